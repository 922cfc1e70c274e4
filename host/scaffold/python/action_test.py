import json
import unittest

from logic import problems


def tokens(template):
    pass


class Problems(unittest.TestCase):
    def test_a_message_is_checked_at_its_field(self):
        self.assertEqual(problems('{"message": "Hi {{contact.first_name}}"}', tokens), [])
        self.assertEqual(problems(json.dumps({"message": "x" * 501}), tokens), [("/message", "at most 500 characters, not 501")])
        self.assertEqual(problems('{"mesage": "typo"}', tokens)[0][0], "/mesage")


if __name__ == "__main__":
    unittest.main()
