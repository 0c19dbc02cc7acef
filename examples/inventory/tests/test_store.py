import unittest

from inventory.store import load, parse_line


class ParseTest(unittest.TestCase):
    def test_plain(self):
        self.assertEqual(parse_line("apples: 3"), ("apples", 3))

    def test_spaces_around_name(self):
        self.assertEqual(parse_line("  pears :7 "), ("pears", 7))

    def test_comment_and_blank(self):
        self.assertIsNone(parse_line("# header"))
        self.assertIsNone(parse_line("   "))

    def test_load_adds_repeated_names(self):
        self.assertEqual(load("a: 1\nb: 2\na: 3\n"), {"a": 4, "b": 2})
