"""``python -m data_prep`` lists the sub-commands."""

import sys

import data_prep

if __name__ == "__main__":
    sys.stdout.write(data_prep.__doc__)
