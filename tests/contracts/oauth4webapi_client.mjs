// A partner's client built on oauth4webapi (OpenID-certified), driven by
// tests/interop/test_oauth4webapi.py against a gateway on loopback.
//
// Input (argv[2], JSON): issuer, client_id, client_jwk (private JWK for private_key_jwt),
// dpop_alg, scope, api_url, and optional flags bad_scope / stale_proof.
// Output (stdout, JSON): what each step saw, so the test can assert on it. Nothing here
// knows the hub: every request and check is the library's own.
import * as oauth from "oauth4webapi";

const input = JSON.parse(process.argv[2]);
const insecure = { [oauth.allowInsecureRequests]: true }; // loopback http only
const out = { nonce_retries: 0 };

function describe(err) {
  if (err instanceof oauth.ResponseBodyError) {
    return { kind: "ResponseBodyError", status: err.status, error: err.error, error_description: err.error_description };
  }
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    return { kind: "WWWAuthenticateChallengeError", status: err.status, challenges: err.cause };
  }
  return { kind: err?.constructor?.name ?? typeof err, code: err?.code, message: String(err?.message ?? err) };
}

async function importClientKey(jwk) {
  const algorithm = jwk.kty === "EC"
    ? { name: "ECDSA", namedCurve: jwk.crv }
    : { name: "RSA-PSS", hash: "SHA-256" };
  const key = await crypto.subtle.importKey("jwk", jwk, algorithm, false, ["sign"]);
  return { key, kid: jwk.kid };
}

// Token request, retried once on use_dpop_nonce as RFC 9449 §8 says; the DPoP handle keeps
// the nonce the server sent.
async function token(as, client, clientAuth, dpop, scope) {
  const request = () => oauth.clientCredentialsGrantRequest(
    as, client, clientAuth, { scope }, { DPoP: dpop, ...insecure });
  let response = await request();
  try {
    return await oauth.processClientCredentialsResponse(as, client, response);
  } catch (err) {
    if (!oauth.isDPoPNonceError(err)) throw err;
    out.nonce_retries += 1;
    response = await request();
    return await oauth.processClientCredentialsResponse(as, client, response);
  }
}

async function main() {
  const issuer = new URL(input.issuer);
  const as = await oauth.processDiscoveryResponse(
    issuer, await oauth.discoveryRequest(issuer, { algorithm: "oauth2", ...insecure }));
  out.token_endpoint = as.token_endpoint;
  const client = { client_id: input.client_id };
  const clientAuth = oauth.PrivateKeyJwt(await importClientKey(input.client_jwk));
  const keyPair = await oauth.generateKeyPair(input.dpop_alg);
  // A DPoP handle whose clock runs an hour ahead signs proofs the server must find stale.
  const dpopClock = input.stale_proof ? { [oauth.clockSkew]: -3600 } : client;
  const dpop = oauth.DPoP(dpopClock, keyPair);
  let tokens;
  try {
    tokens = await token(as, client, clientAuth, dpop, input.scope);
  } catch (err) {
    out.token_error = describe(err);
    return;
  }
  out.token_type = tokens.token_type;
  out.scope = tokens.scope;
  const response = await oauth.protectedResourceRequest(
    tokens.access_token, "GET", new URL(input.api_url), new Headers(), null,
    { DPoP: dpop, ...insecure });
  out.api_status = response.status;
  out.api_body = await response.json();
}

try {
  await main();
} catch (err) {
  out.unexpected = describe(err);
}
process.stdout.write(JSON.stringify(out));
