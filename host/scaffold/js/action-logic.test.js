import assert from 'node:assert/strict';
import { test } from 'node:test';

import { problems } from '../src/logic.js';

const tokens = () => {};

test('a message is checked at its field', () => {
  assert.deepEqual(problems('{"message": "Hi {{contact.first_name}}"}', tokens), []);
  assert.deepEqual(problems(JSON.stringify({ message: 'x'.repeat(501) }), tokens), [
    { field: '/message', message: 'at most 500 characters, not 501' },
  ]);
  assert.equal(problems('{"mesage": "typo"}', tokens)[0].field, '/mesage');
});
