// Signing keys of the development OpenID provider: generated in memory at
// start, never stored. The public JWK is built exactly as oidc-provider
// publishes it, so tests can compare the JWKS byte for byte.

import { calculateJwkThumbprint, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';

export type DevIdpSigningAlg = 'RS256' | 'ES256';

export interface DevIdpSigningKey {
  readonly kid: string;
  readonly alg: DevIdpSigningAlg;
  readonly privateKey: CryptoKey;
  /** Private JWK with kid/alg/use, as handed to the provider. */
  readonly privateJwk: JWK;
  /** The public JWK exactly as the provider publishes it in its JWKS (same members, same order). */
  readonly publicJwk: JWK;
}

/** A new signing key pair; kid = the JWK thumbprint of the public key. */
/** A member exportJWK always sets for a public key of this type. */
function member(value: string | undefined): string {
  if (value === undefined) throw new TypeError('exportJWK returned a public key without a required member');
  return value;
}

export async function generateSigningKey(alg: DevIdpSigningAlg): Promise<DevIdpSigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const pub = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(pub);
  const privateJwk: JWK = { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
  // Member order as oidc-provider's JWKS endpoint serves it (lib/helpers/initialize_keystore.js;
  // the harness test checks it byte for byte).
  const publicJwk: JWK =
    pub.kty === 'RSA'
      ? { kty: 'RSA', use: 'sig', kid, alg, e: member(pub.e), n: member(pub.n) }
      : { kty: 'EC', use: 'sig', kid, alg, crv: member(pub.crv), x: member(pub.x), y: member(pub.y) };
  return { kid, alg, privateKey, privateJwk, publicJwk };
}
