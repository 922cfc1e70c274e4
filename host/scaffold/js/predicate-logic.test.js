import assert from 'node:assert/strict';
import { test } from 'node:test';

import { atOneOf, problems } from '../src/logic.js';

test('an address is at a listed domain whatever its case', () => {
  assert.equal(atOneOf('ada@Example.COM', ['example.com']), true);
  assert.equal(atOneOf('ada@example.org', ['example.com']), false);
  assert.equal(atOneOf('', ['example.com']), false);
});

test('a config lists at least one domain', () => {
  assert.deepEqual(problems('{"domains": ["example.com"]}'), []);
  assert.equal(problems('{"domains": []}')[0].field, '/domains');
});
