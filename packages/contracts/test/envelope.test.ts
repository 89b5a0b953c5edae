import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PubSubEnvelope, USER_BATCH_MAX, checkPubSubEnvelope } from '../src/index.js';

/**
 * The edge's hand-written envelope check must agree with the schema on every input: same verdict, same
 * value. Inputs are envelopes built member by member from values on and around each limit, so that most
 * are near-valid and each rule is crossed both ways, plus arbitrary JSON values.
 */
const text = (n: number, c = 'a') => c.repeat(n);
const edgeStrings = [
  '',
  'a',
  text(64),
  text(65),
  text(200),
  text(201),
  '{',
  '{"a":1,',
  'x{',
  '1-2',
  '12345678901234567890-1',
  '123456789012345678901-1',
  '1-',
  '1.2',
  '-1-2',
  '1-2\n',
];
// (no undefined: a member parsed from JSON is present with a value or absent, which `requiredKeys: []` makes)
const weird = [null, 0, 1, -1, 1.5, true, [], {}, Number.MAX_SAFE_INTEGER + 1];
const value = fc.oneof(fc.constantFrom(...edgeStrings, ...weird), fc.string(), fc.jsonValue());
const userId = fc.oneof(
  fc.integer({ min: 1, max: 2 ** 31 }),
  fc.constantFrom(0, -3, 1.5, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1, '7', null),
);
const streamId = fc.oneof(
  fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => `${a}-${b}`),
  fc.constantFrom(...edgeStrings),
);
const tuple = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(userId, streamId) },
  { weight: 1, arbitrary: fc.constantFrom([1], [1, '1-1', 'x'], 'x', null, { 0: 1, 1: '1-1' }) },
);
const users = fc.oneof(
  { weight: 6, arbitrary: fc.array(tuple, { minLength: 0, maxLength: 5 }) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(USER_BATCH_MAX, USER_BATCH_MAX + 1)
      .map((n) => Array.from({ length: n }, (_, i): [number, string] => [i + 1, `${i}-0`])),
  },
  { weight: 1, arbitrary: value },
);
/** Left out of the envelope (a member is present with a value or absent: JSON has no undefined). */
const ABSENT = Symbol('absent');
/** A member: mostly a value from `a` (on and around its limits), sometimes absent or anything at all. */
const member = (a: fc.Arbitrary<unknown>, absentWeight = 1) =>
  fc.oneof(
    { weight: 12, arbitrary: a },
    { weight: absentWeight, arbitrary: fc.constant(ABSENT) },
    { weight: 1, arbitrary: value },
  );
const optionalMember = (a: fc.Arbitrary<unknown>) => member(a, 12);
const envelope = fc
  .record({
    v: member(fc.constant(1)),
    node: member(fc.constantFrom('n', '', text(200), text(200), text(201))),
    source: optionalMember(fc.constantFrom('42', text(64), text(64), '', text(65))),
    type: member(fc.constantFrom('event', 'user-batch', 'event', 'user-batch', 'other')),
    channel: member(fc.constantFrom('private-user.1', text(200), text(200), '', text(201))),
    event: member(fc.constantFrom('App\\Events\\AlarmCreated', text(200), text(200), '', text(201))),
    data: member(fc.constantFrom('{"a":1}', '{"a":1}', '')),
    eventId: optionalMember(fc.constantFrom('1-2', '', text(64), text(64), text(65))),
    excludeSocketId: optionalMember(
      fc.constantFrom('1.2', '12345678901234567890.1', '1.', '123456789012345678901.1', 'a.b'),
    ),
    dataHead: member(fc.constantFrom('{', '{"a":1,', '{', '', 'x{')),
    users,
    extra: optionalMember(value),
  })
  .map(
    (r) =>
      JSON.parse(
        JSON.stringify(Object.fromEntries(Object.entries(r).filter(([, v]) => v !== ABSENT))),
      ) as unknown,
  );

const schema = (x: unknown) => {
  const r = PubSubEnvelope.safeParse(x);
  return r.success ? r.data : null;
};

describe('checkPubSubEnvelope', () => {
  it('gives what the schema gives, on near-valid envelopes', () => {
    let accepted = 0;
    fc.assert(
      fc.property(envelope, (x) => {
        const expected = schema(x);
        expect(checkPubSubEnvelope(x)).toStrictEqual(expected);
        if (expected) accepted += 1;
      }),
      { numRuns: 20_000 },
    );
    // The generator must reach both verdicts often enough to mean anything.
    expect(accepted).toBeGreaterThan(200);
  });

  it('gives what the schema gives, on any JSON value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (x) => {
        expect(checkPubSubEnvelope(x)).toStrictEqual(schema(x));
      }),
      { numRuns: 2_000 },
    );
  });
});
