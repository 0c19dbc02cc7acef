import os
import tempfile
import unittest

from inventory.cli import main


class CliTest(unittest.TestCase):
    def setUp(self):
        fd, self.path = tempfile.mkstemp()
        with os.fdopen(fd, "w") as f:
            f.write("apples: 3\npears: 12\nplums: 1\n")

    def tearDown(self):
        os.unlink(self.path)

    def test_total(self):
        self.assertEqual(main([self.path, "total"]), ["16"])

    def test_low_lists_items_below_the_threshold(self):
        self.assertEqual(main([self.path, "low", "5"]), ["apples: 3", "plums: 1"])
