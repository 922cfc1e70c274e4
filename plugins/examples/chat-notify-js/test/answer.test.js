import assert from 'node:assert/strict';
import { test } from 'node:test';

import { outcome, problems } from '../src/answer.js';

const answer = (status, headers = []) => ({ answer: { status, headers, body: new Uint8Array() } });
const tokens = (template) => {
  if (template.includes('{{nope}}')) {
    throw Object.assign(new Error('invalid'), { payload: { code: 'invalid', message: 'unknown token "nope"' } });
  }
};

test('a 2xx answer posts, a busy or failing chat is tried again, anything else fails', () => {
  assert.deepEqual(outcome(answer(204)), { tag: 'done', val: { result: 'posted', output: 'null' } });
  assert.equal(outcome(answer(429, [['Retry-After', ' 7 ']])).val.afterMs, 7000n);
  assert.equal(outcome(answer(503)).val.afterMs, 60000n);
  assert.equal(outcome(answer(502, [['retry-after', '86400']])).val.afterMs, 3600000n);
  assert.deepEqual(outcome(answer(404)), { tag: 'failed', val: { message: 'the chat answered HTTP 404', details: 'null' } });
  assert.equal(outcome({ error: { code: 'transport', message: 'refused' } }).tag, 'retry');
  assert.equal(outcome({ error: { code: 'denied', message: 'not granted' } }).tag, 'failed');
});

test('each problem of a config is named at its field', () => {
  assert.deepEqual(problems('{"url": "https://chat.example.com/hook", "text": "Hi {{contact.first_name}}"}', tokens), []);
  assert.deepEqual(problems('{"url": "ftp://x", "text": "{{nope}}", "channel": "#sales"}', tokens), [
    { field: '/channel', message: 'unknown field `channel`, expected one of url, text' },
    { field: '/url', message: 'the webhook URL must start with https:// or http://' },
    { field: '/text', message: 'unknown token "nope"' },
  ]);
  assert.equal(problems('{', tokens)[0].field, '');
});
