"""The driver's progress lines go to stderr, so that stdout keeps only the final table."""
import sys


def log(text):
    print(text, file=sys.stderr, flush=True)
