// Local demo/test OpenID Connect provider for the FINCI operations console.
//
// NOT FOR PRODUCTION: anyone who can reach it can sign in as any persona with one click.
// It exists so the test suite and the demo exercise a real, certified OIDC implementation
// (oidc-provider) instead of a hand-rolled fake.
//
// Configuration (environment):
//   IDP_PORT                       port to bind on 127.0.0.1 (0 = pick a free one; default 0)
//   IDP_ISSUER                     issuer URL override (default http://127.0.0.1:<port>)
//   IDP_CLIENT_ID                  the console's client_id            (default finci-console)
//   IDP_CLIENT_SECRET              the console's client_secret        (default finci-console-secret)
//   IDP_REDIRECT_URIS              space-separated redirect URIs      (required)
//   IDP_POST_LOGOUT_REDIRECT_URIS  space-separated post-logout URIs   (optional)
//
// Protocol: once listening, exactly one JSON line is written to stdout:
//   {"issuer":"http://127.0.0.1:PORT"}
// Everything else (including oidc-provider notices) goes to stderr.

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import Provider from 'oidc-provider';

// oidc-provider prints its NOTICEs with console.info (stdout); keep stdout for the protocol line.
console.info = (...args) => console.error(...args); // eslint-disable-line no-console
console.log = (...args) => console.error(...args); // eslint-disable-line no-console

const here = path.dirname(fileURLToPath(import.meta.url));
const PERSONAS = JSON.parse(fs.readFileSync(path.join(here, 'personas.json'), 'utf8'));
const ACCOUNTS = new Map(
  Object.entries(PERSONAS).map(([key, p]) => [p.sub, { key, ...p }]),
);

const HOST = '127.0.0.1';
const SCOPES = ['openid', 'email', 'profile', 'groups'];
const BANNER = 'Local demo identity provider — not for production';

function fail(message) {
  console.error(`idp: ${message}`);
  process.exit(2);
}

function splitList(value) {
  return (value || '').split(/\s+/).filter(Boolean);
}

function escapeHtml(value) {
  return String(value)
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

const PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";
const STYLE = `
  body{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}
  .banner{background:#fff3cd;border:1px solid #e0b000;padding:.5rem .75rem;border-radius:4px}
  ul{list-style:none;padding:0} li{margin:.5rem 0;display:flex;gap:.75rem;align-items:center}
  form{margin:0} button{font-size:1rem;padding:.4rem .8rem;cursor:pointer;min-width:14rem;text-align:left}
  .groups{color:#555;font-size:.9rem} code{background:#f3f3f3;padding:0 .2rem}
  pre{white-space:pre-wrap;word-break:break-word}`;

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<p class="banner" role="note"><strong>${escapeHtml(BANNER)}</strong>. No password is asked: any visitor can sign in as any persona.</p>
${body}
</body>
</html>`;
}

// ---------------------------------------------------------------------------- configuration

const port = Number.parseInt(process.env.IDP_PORT ?? '0', 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`invalid IDP_PORT ${process.env.IDP_PORT}`);
const clientId = process.env.IDP_CLIENT_ID || 'finci-console';
const clientSecret = process.env.IDP_CLIENT_SECRET || 'finci-console-secret';
const redirectUris = splitList(process.env.IDP_REDIRECT_URIS);
const postLogoutRedirectUris = splitList(process.env.IDP_POST_LOGOUT_REDIRECT_URIS);
if (redirectUris.length === 0) fail('IDP_REDIRECT_URIS must list at least one redirect URI');

// Fresh keys on every start: ID token signing key (RS256) and cookie signing keys.
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = {
  ...privateKey.export({ format: 'jwk' }),
  kid: crypto.randomBytes(8).toString('hex'),
  alg: 'RS256',
  use: 'sig',
};
const cookieKeys = [crypto.randomBytes(32).toString('base64url')];

let handler = (req, res) => {
  res.statusCode = 503;
  res.end('starting');
};
const server = http.createServer((req, res) => handler(req, res));

server.on('error', (err) => fail(`server error: ${err.message}`));
server.listen(port, HOST, () => {
  const actualPort = server.address().port;
  const issuer = (process.env.IDP_ISSUER || `http://${HOST}:${actualPort}`).replace(/\/+$/, '');
  try {
    handler = buildHandler(issuer);
  } catch (err) {
    fail(`could not configure provider: ${err.stack || err}`);
  }
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
  console.error(`idp: listening on http://${HOST}:${actualPort} issuer=${issuer} client_id=${clientId}`);
});

function buildHandler(issuer) {
  const secureCookies = issuer.startsWith('https:');
  const cookieOpts = { httpOnly: true, sameSite: 'lax', signed: true, secure: secureCookies };

  const configuration = {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        client_name: 'FINCI operations console',
        redirect_uris: redirectUris,
        post_logout_redirect_uris: postLogoutRedirectUris,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        // client_secret_post is accepted for a client_secret_basic client too (same secret).
        token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: 'RS256',
        require_auth_time: true,
        scope: SCOPES.join(' '),
      },
    ],
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    responseTypes: ['code'],
    pkce: { methods: ['S256'], required: () => true },
    scopes: SCOPES,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    // Put scope-requested claims (groups, email, ...) in the ID token itself, not only userinfo.
    conformIdTokenClaims: false,
    jwks: { keys: [signingJwk] },
    enabledJWA: { idTokenSigningAlgValues: ['RS256'] },
    cookies: {
      keys: cookieKeys,
      long: cookieOpts,
      short: cookieOpts,
    },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
      userinfo: { enabled: true },
      revocation: { enabled: true },
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    ttl: {
      AuthorizationCode: 60,
      AccessToken: 300,
      IdToken: 300,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    async findAccount(ctx, sub) {
      const account = ACCOUNTS.get(sub);
      if (!account) return undefined;
      return {
        accountId: sub,
        async claims() {
          return {
            sub,
            email: account.email,
            email_verified: true,
            name: account.name,
            preferred_username: account.key,
            groups: [...account.groups],
          };
        },
      };
    },
    renderError,
  };

  const provider = new Provider(issuer, configuration);
  provider.on('server_error', (ctx, err) => console.error('idp: server_error', err));
  const providerCallback = provider.callback();

  return async function route(req, res) {
    const url = new URL(req.url, 'http://placeholder');
    const match = /^\/interaction\/([A-Za-z0-9_-]+)(\/[a-z]+)?\/?$/.exec(url.pathname);
    if (!match) return providerCallback(req, res);
    try {
      await interaction(provider, req, res, match[2] || '');
    } catch (err) {
      sendHtml(res, err.statusCode && err.statusCode < 500 ? err.statusCode : 500,
        page('Sign-in error', `<h1>Sign-in error</h1><pre>${escapeHtml(err.name)}: ${escapeHtml(err.error_description || err.message)}</pre>
<p>Start again from the console.</p>`));
      if (!err.statusCode || err.statusCode >= 500) console.error('idp: interaction error', err);
    }
    return undefined;
  };
}

// ---------------------------------------------------------------------------- interactions

async function interaction(provider, req, res, action) {
  const details = await provider.interactionDetails(req, res);
  const { uid, prompt, params, session } = details;

  if (action === '' && req.method === 'GET') {
    if (prompt.name === 'consent') return autoConsent(provider, req, res, details);
    if (prompt.name !== 'login') throw Object.assign(new Error(`unsupported prompt ${prompt.name}`), { statusCode: 400 });
    const client = await provider.Client.find(params.client_id);
    const clientName = (client && client.clientName) || params.client_id;
    return sendHtml(res, 200, loginPage(uid, clientName, prompt, session));
  }
  if (action === '/login' && req.method === 'POST') {
    const form = await readForm(req);
    const persona = PERSONAS[form.get('persona')];
    if (prompt.name !== 'login' || !persona) {
      throw Object.assign(new Error('unknown persona or unexpected step'), { statusCode: 400 });
    }
    return provider.interactionFinished(req, res, {
      login: { accountId: persona.sub, remember: true },
    }, { mergeWithLastSubmission: false });
  }
  if (action === '/abort' && req.method === 'POST') {
    await readForm(req);
    return provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }
  throw Object.assign(new Error('not found'), { statusCode: 404 });
}

// The console is a first-party client: consent is recorded without asking.
async function autoConsent(provider, req, res, details) {
  const { prompt: { details: missing }, params, session: { accountId } } = details;
  let { grantId } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId, clientId: params.client_id });
  const allowed = (missing.missingOIDCScope || []).filter((s) => SCOPES.includes(s));
  if (allowed.length) grant.addOIDCScope(allowed.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  const consent = {};
  const saved = await grant.save();
  if (!grantId) {
    grantId = saved;
    consent.grantId = grantId;
  }
  return provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
}

function loginPage(uid, clientName, prompt, session) {
  const reauth = Boolean(session && session.accountId);
  const current = reauth ? ACCOUNTS.get(session.accountId) : undefined;
  const items = Object.entries(PERSONAS).map(([key, p]) => `  <li>
    <form method="post" action="/interaction/${escapeHtml(uid)}/login">
      <input type="hidden" name="persona" value="${escapeHtml(key)}">
      <button type="submit">Sign in as ${escapeHtml(key)}</button>
    </form>
    <span class="groups">${escapeHtml(p.name)} — groups: ${p.groups.length ? p.groups.map((g) => `<code>${escapeHtml(g)}</code>`).join(' ') : '<em>none</em>'}</span>
  </li>`).join('\n');
  const note = reauth
    ? `<p role="status">Re-authentication required${current ? ` (currently signed in as <strong>${escapeHtml(current.key)}</strong>)` : ''}.</p>`
    : '';
  return page('Sign in — local demo IdP', `<h1>Sign in</h1>
<p>Choose a persona to sign in to <strong>${escapeHtml(clientName)}</strong>.</p>
${note}
<ul aria-label="Personas">
${items}
</ul>
<form method="post" action="/interaction/${escapeHtml(uid)}/abort">
  <button type="submit">Cancel sign-in</button>
</form>
<!-- prompt=${escapeHtml(prompt.name)} reasons=${escapeHtml(prompt.reasons.join(','))} -->`);
}

// ---------------------------------------------------------------------------- provider pages

async function logoutSource(ctx, form) {
  ctx.set('Content-Security-Policy', PAGE_CSP);
  const withButton = form.replace('</form>',
    '<button type="submit" name="logout" value="yes" autofocus>Yes, sign me out</button></form>');
  ctx.body = page('Sign out — local demo IdP', `<h1>Sign out</h1>
<p>Do you want to sign out of the local demo identity provider?</p>
${withButton}
<p><button type="submit" form="op.logoutForm">No, stay signed in</button></p>`);
}

async function postLogoutSuccessSource(ctx) {
  ctx.set('Content-Security-Policy', PAGE_CSP);
  ctx.type = 'html';
  ctx.body = page('Signed out — local demo IdP', '<h1>Signed out</h1><p>You have been signed out.</p>');
}

async function renderError(ctx, out) {
  ctx.set('Content-Security-Policy', PAGE_CSP);
  ctx.type = 'html';
  ctx.body = page('Error — local demo IdP', `<h1>Something went wrong</h1>
${Object.entries(out).map(([k, v]) => `<pre><strong>${escapeHtml(k)}</strong>: ${escapeHtml(v)}</pre>`).join('\n')}`);
}

// ---------------------------------------------------------------------------- helpers

function sendHtml(res, status, html) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Security-Policy', PAGE_CSP);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.end(html);
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > 16 * 1024) {
        reject(Object.assign(new Error('request body too large'), { statusCode: 413 }));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

// ---------------------------------------------------------------------------- shutdown

let stopping = false;
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.error(`idp: ${signal} received, shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
