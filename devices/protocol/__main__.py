"""Regenerate the shipped JSON Schemas: ``python -m devices.protocol``."""

import json
from pathlib import Path

from . import json_schemas


def main() -> None:
    folder = Path(__file__).with_name("schemas")
    folder.mkdir(exist_ok=True)
    for name, schema in json_schemas().items():
        (folder / f"{name}.json").write_text(
            json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
        )
        print(f"wrote schemas/{name}.json")


if __name__ == "__main__":
    main()
