"""What the plotting commands print and write once they have drawn a figure."""
from common.files import write_text


def report(paths, table, table_file=None):
    """Say which figure files were written, write the markdown ``table`` to ``table_file``
    where one is given, and print the table."""
    for path in paths:
        print(f"wrote {path}")
    if table_file:
        write_text(table_file, table)
        print(f"wrote {table_file}")
    print(table, end="")
