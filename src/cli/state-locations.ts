// The words of `drawbridge state copy`'s locations (sqlite:DIR, postgres:VAR…), for its help
// (commands.ts) and its parser (state.ts). They name state engines, not backends: the one
// place in the CLI besides state.ts where the engine names appear (see the boundaries test).

/** The forms --from and --to take. */
export const STATE_LOCATIONS = 'sqlite:DIR, sqlite:JOURNAL.db, postgres (the URL in $DRAWBRIDGE_STATE_URL) or postgres:VAR (the URL in $VAR)';

export const STATE_COPY_EXAMPLES: readonly string[] = [
  'drawbridge state copy --from sqlite:/etc/drawbridge/.drawbridge --to postgres    # the URL in $DRAWBRIDGE_STATE_URL',
  'drawbridge state copy --from postgres:OLD_STATE_URL --to sqlite:/var/backups/drawbridge',
];

export const STATE_COPY_NOTES: readonly string[] = [
  'sqlite:DIR is a directory holding journal.db and approvals.db; sqlite:FILE.db is a journal file with approvals.db next to it. ' +
    'postgres reads the URL from $DRAWBRIDGE_STATE_URL, postgres:VAR from $VAR: a URL (it holds a password) is never given on the command line.',
  'The source is verified first; every copied record must hash exactly as in the source, and the copy is verified at the end. ' +
    'A target that is not empty is refused before anything is written.',
];
