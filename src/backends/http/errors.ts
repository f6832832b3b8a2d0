// The http_request backend's own error codes (requests it refuses before
// anything is sent, and path parameters its OpenAPI document rejects), with
// their hints, added to the one catalog in src/errors.ts.

import { defineErrorCodes } from '../../errors.js';

declare module '../../errors.js' {
  interface BackendErrorCodes {
    'http.method_invalid': true;
    'http.path_invalid': true;
    'http.query_invalid': true;
    'http.header_forbidden': true;
    'http.header_invalid': true;
    'http.body_invalid': true;
    'http.parameter_invalid': true;
  }
}

export const HTTP_ERRORS = defineErrorCodes({
  'http.method_invalid': {
    kind: 'refusal',
    hint: 'Use one of GET, HEAD, OPTIONS, POST, PUT, PATCH or DELETE.',
  },
  'http.path_invalid': {
    kind: 'refusal',
    hint:
      'Send a plain path relative to the connection\'s base URL, e.g. "/customers/42": no scheme or host, no "..", ' +
      'no encoded slashes or backslashes, no control characters; put the query in `query`, not in the path.',
  },
  'http.query_invalid': {
    kind: 'refusal',
    hint: 'Send query parameters in `query` as one plain value per name, without control characters; the gateway encodes them.',
  },
  'http.header_forbidden': {
    kind: 'refusal',
    hint:
      'The gateway sets the host, credentials, cookies, framing and hop-by-hop headers itself. ' +
      "Send only the headers the connection's allowed_headers lists (and Content-Type or Accept).",
  },
  'http.header_invalid': {
    kind: 'refusal',
    hint: 'Header names are HTTP tokens; values are one line of text without control characters.',
  },
  'http.body_invalid': {
    kind: 'refusal',
    hint: "Send a body only with POST, PUT, PATCH or DELETE, within the connection's max_request_bytes.",
  },
  'http.parameter_invalid': {
    kind: 'refusal',
    hint: "A path parameter does not satisfy the API's OpenAPI document; send a value of the documented type and form.",
  },
});
