"""Stock files: one `name: quantity` per line; blank lines and # comments are skipped."""


def parse_line(line):
    """(name, quantity) from one line of a stock file, or None for a blank or comment line."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    name, quantity = line.split(":")
    return name, int(quantity.strip(" "))


def load(text):
    """A dict of name -> quantity from the text of a stock file."""
    items = {}
    for line in text.splitlines():
        parsed = parse_line(line)
        if parsed is not None:
            name, quantity = parsed
            items[name] = items.get(name, 0) + quantity
    return items
