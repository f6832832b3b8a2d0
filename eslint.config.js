// Lint configuration: ESLint's and typescript-eslint's recommended rules (no
// type-aware rules, so a lint run takes seconds), plus the few choices below.
// Formatting is Prettier's job (.prettierrc.json), never the linter's.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'scratch/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      // Unused names are a compiler error already where it matters; `_name` marks one kept on purpose.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Control characters in regexes are the point here: input validation, the shell grammar and
      // the output sanitisers must find exactly those bytes.
      'no-control-regex': 'off',
    },
  },
  {
    // Tests read JSON answers and SDK results loosely on purpose; the code under test may not.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
