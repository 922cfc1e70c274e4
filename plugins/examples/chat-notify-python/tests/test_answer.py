import unittest

from answer import decide, problems


class HostError(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.value = type("Value", (), {"message": message})()


def tokens(template):
    if "{{nope}}" in template:
        raise HostError('unknown token "nope"')


class Decide(unittest.TestCase):
    def test_a_2xx_posts_a_busy_or_failing_chat_is_tried_again_and_anything_else_fails(self):
        self.assertEqual(decide(status=204), ("done", "posted"))
        self.assertEqual(decide(status=429, headers=[("Retry-After", " 7 ")]), ("retry", 7, "the chat answered HTTP 429"))
        self.assertEqual(decide(status=503)[:2], ("retry", 60))
        self.assertEqual(decide(status=502, headers=[("retry-after", "86400")])[1], 3600)
        self.assertEqual(decide(status=404), ("failed", "the chat answered HTTP 404"))
        self.assertEqual(decide(error=("transport", "refused")), ("retry", 60, "refused"))
        self.assertEqual(decide(error=("denied", "not granted")), ("failed", "not granted"))


class Problems(unittest.TestCase):
    def test_each_problem_of_a_config_is_named_at_its_field(self):
        self.assertEqual(problems('{"url": "https://chat.example.com/hook", "text": "Hi {{contact.first_name}}"}', tokens), [])
        self.assertEqual(
            problems('{"url": "ftp://x", "text": "{{nope}}", "channel": "#sales"}', tokens),
            [
                ("/channel", "unknown field `channel`, expected one of url, text"),
                ("/url", "the webhook URL must start with https:// or http://"),
                ("/text", 'unknown token "nope"'),
            ],
        )
        self.assertEqual(problems("{", tokens)[0][0], "")


if __name__ == "__main__":
    unittest.main()
