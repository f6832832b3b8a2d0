// The http_request backend's transport error codes (address refusals,
// time and network faults), with their hints, added to the one
// catalog in src/errors.ts. Kept apart from the backend's errors.ts so the
// transport stands alone; the two catalogs merge into one when the backend is wired.

import { defineErrorCodes } from '../../errors.js';

declare module '../../errors.js' {
  interface BackendErrorCodes {
    'http.address_refused': true;
    'http.timeout': true;
    'http.unreachable': true;
    'http.tls_failed': true;
    'http.bad_response': true;
  }
}

export const HTTP_NET_ERRORS = defineErrorCodes({
  'http.address_refused': {
    kind: 'refusal',
    hint:
      'The service name resolved to (or is) a private, loopback, link-local, metadata or otherwise non-public address that this connection ' +
      'does not declare in its networks. Nothing was sent. If the service really lives there, the operator adds that range to networks.',
  },
  'http.timeout': {
    kind: 'fault',
    hint: 'The service did not answer in full within the time limit; nothing more was read. Retry later, ask for less, or tell the operator.',
  },
  'http.unreachable': {
    kind: 'fault',
    hint: 'The service could not be reached (name not found, connection refused or reset). Retry later or tell the operator.',
  },
  'http.tls_failed': {
    kind: 'fault',
    hint: "The service's TLS certificate could not be verified for its host name (or the TLS handshake failed). Tell the operator.",
  },
  'http.bad_response': {
    kind: 'fault',
    hint: 'The service sent something that is not a valid HTTP response (or headers over the size limit). Tell the operator.',
  },
});
