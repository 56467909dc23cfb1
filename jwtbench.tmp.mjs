import { createHmac, createSecretKey, generateKeyPairSync, sign, verify, randomBytes, timingSafeEqual } from 'node:crypto';
import * as jose from 'jose';
import jwt from 'jsonwebtoken';
import argon2 from 'argon2';
const secret = createSecretKey(randomBytes(32));
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const claims = { sub: '1', typ: 'access', ver: 0, sid: 'x', iss: 'a', aud: 'a', exp: Math.floor(Date.now()/1000)+3600 };
const hs = jwt.sign(claims, secret, { algorithm: 'HS256' });
const ed = await new jose.SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid: 'k' }).sign(privateKey);
const b64 = (b) => Buffer.from(b).toString('base64url');
function nodeVerifyHS(t) { const i = t.lastIndexOf('.'); const mac = createHmac('sha256', secret).update(t.slice(0, i)).digest(); const sig = Buffer.from(t.slice(i+1), 'base64url'); return sig.length===mac.length && timingSafeEqual(mac, sig) && JSON.parse(Buffer.from(t.slice(t.indexOf('.')+1, i), 'base64url')); }
function nodeVerifyEd(t) { const i = t.lastIndexOf('.'); return verify(null, Buffer.from(t.slice(0, i)), publicKey, Buffer.from(t.slice(i+1), 'base64url')) && JSON.parse(Buffer.from(t.slice(t.indexOf('.')+1, i), 'base64url')); }
async function rate(name, fn, n = 20000) { const s = process.hrtime.bigint(); for (let k = 0; k < n; k++) await fn(); const us = Number(process.hrtime.bigint() - s) / 1e3 / n; console.log(name.padEnd(40), us.toFixed(1), 'us/verify'); }
async function all(label) {
  console.log('--', label);
  await rate('jsonwebtoken HS256 (passport-jwt today)', () => new Promise((r, j) => jwt.verify(hs, secret, { algorithms: ['HS256'] }, (e, p) => e ? j(e) : r(p))));
  await rate('jose HS256', () => jose.jwtVerify(hs, secret, { algorithms: ['HS256'] }));
  await rate('jose EdDSA', () => jose.jwtVerify(ed, publicKey, { algorithms: ['EdDSA'] }));
  await rate('node:crypto HS256 (sync)', async () => nodeVerifyHS(hs));
  await rate('node:crypto EdDSA (sync)', async () => nodeVerifyEd(ed));
}
await all('idle thread pool');
const hash = await argon2.hash('pw', { type: argon2.argon2id, memoryCost: 19456, timeCost: 2 });
let stop = false; const busy = Array.from({ length: 4 }, async () => { while (!stop) await argon2.verify(hash, 'pw'); });
await all('thread pool busy with 4 argon2 verifies (UV_THREADPOOL_SIZE=4)');
stop = true; await Promise.all(busy);
