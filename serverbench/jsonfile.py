"""Reading and writing the JSON documents of a run folder, for the driver and the plots alike."""
import json
import os


def read_json(path):
    """The document at path, or None when it is absent or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_json(path, doc):
    """Written whole, then renamed: a reader never sees half a document."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
