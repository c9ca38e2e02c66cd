import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseChallenges, formatChallenges, type Challenge } from '../src/stores/remote/challenge.js';

test('parses the challenges registries send', () => {
  assert.deepEqual(parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'), [
    { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' } },
  ]);
  assert.deepEqual(parseChallenges('Basic realm="Registry Realm"'), [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
  assert.deepEqual(parseChallenges('Basic YWxhZGRpbjpvcGVuc2VzYW1l=='), [{ scheme: 'basic', params: {}, token68: 'YWxhZGRpbjpvcGVuc2VzYW1l==' }]);
  assert.deepEqual(parseChallenges('Negotiate, Basic realm=x , Bearer realm="r", error=invalid_token'), [
    { scheme: 'negotiate', params: {} },
    { scheme: 'basic', params: { realm: 'x' } },
    { scheme: 'bearer', params: { realm: 'r', error: 'invalid_token' } },
  ]);
  assert.deepEqual(parseChallenges('Bearer realm="a\\"b\\\\c"'), [{ scheme: 'bearer', params: { realm: 'a"b\\c' } }]);
  assert.deepEqual(parseChallenges(''), []);
  assert.deepEqual(parseChallenges('realm=x'), []);
  // Found by the property below: a param named __proto__ was dropped (assigned as a prototype).
  const [c] = parseChallenges('Bearer __proto__="x", realm=r');
  assert.deepEqual(Object.entries(c!.params), [['__proto__', 'x'], ['realm', 'r']]);
  assert.equal(Object.getPrototypeOf(c!.params), Object.prototype);
});

const token = fc.stringMatching(/^[!#$%&'*+.^_`|~0-9a-z-]{1,12}$/);
const value = fc.string({ maxLength: 40 }).filter((s) => !/[\r\n]/.test(s));
const challenge: fc.Arbitrary<Challenge> = fc.oneof(
  fc.record({ scheme: token, params: fc.dictionary(token, value, { maxKeys: 5 }) }),
  fc.record({ scheme: token, params: fc.constant({}), token68: fc.stringMatching(/^[A-Za-z0-9\-._~+/]{1,20}={0,2}$/) }),
);

test('property: format then parse is the identity', () => {
  fc.assert(
    fc.property(fc.array(challenge, { minLength: 1, maxLength: 4 }), (cs) => {
      // A null-prototype dictionary (keys like __proto__) compares equal to a plain object here.
      const norm = (x: Challenge[]): unknown => JSON.parse(JSON.stringify(x));
      assert.deepEqual(norm(parseChallenges(formatChallenges(cs))), norm(cs));
    }),
  );
});

test('property: any input parses without throwing, to lower-case schemes', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), (s) => {
      for (const c of parseChallenges(s)) assert.equal(c.scheme, c.scheme.toLowerCase());
    }),
  );
});

test('property: extra whitespace around separators changes nothing', () => {
  // Values without commas, so that the only ", " in the header are separators.
  const plain = fc.array(challenge, { minLength: 1, maxLength: 3 }).filter((cs) => cs.every((c) => Object.values(c.params).every((v) => !v.includes(','))));
  fc.assert(
    fc.property(plain, fc.constantFrom(' ', '  ', '\t'), (cs, ws) => {
      const spaced = formatChallenges(cs).replace(/, /g, `${ws},${ws}`);
      assert.deepEqual(JSON.parse(JSON.stringify(parseChallenges(spaced))), JSON.parse(JSON.stringify(parseChallenges(formatChallenges(cs)))));
    }),
  );
});
