import unittest

from logic import at_one_of, problems


class AtOneOf(unittest.TestCase):
    def test_an_address_is_at_a_listed_domain_whatever_its_case(self):
        self.assertTrue(at_one_of("ada@Example.COM", ["example.com"]))
        self.assertFalse(at_one_of("ada@example.org", ["example.com"]))
        self.assertFalse(at_one_of("", ["example.com"]))

    def test_a_config_lists_at_least_one_domain(self):
        self.assertEqual(problems('{"domains": ["example.com"]}'), [])
        self.assertEqual(problems('{"domains": []}')[0][0], "/domains")


if __name__ == "__main__":
    unittest.main()
