"""Copy one figure of each notebook's committed outputs to docs/images/ for the README index.

    python scripts/readme_images.py    # after `make notebooks`

The cell is chosen by a piece of its source, so the picture follows the notebook when cells move.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PICKS = {  # notebook -> a string that the chosen cell's source contains
    "01_tokens": 'get_sample_data("grace_hopper.jpg")',
    "02_self_attention": "ink = pixels[0].sum",
    "03_multi_head": "analysis.cls_attention(maps",
    "04_vit": "moved_roll = analysis.token_grid",
    "05_deit": "stochastic depth: white",
    "06_convit": "def kernel_figure",
    "07_cait": "upper = Ns >= np.median(Ns)",
    "08_mixer": "maps = net.token_mixing(0)",
}


def main() -> None:
    out = ROOT / "docs" / "images"
    out.mkdir(parents=True, exist_ok=True)
    for name, needle in PICKS.items():
        cells = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())["cells"]
        cell = next(c for c in cells if c["cell_type"] == "code" and needle in "".join(c["source"]))
        png = next(o["data"]["image/png"] for o in cell["outputs"] if "image/png" in o.get("data", {}))
        (out / f"{name}.png").write_bytes(base64.b64decode(png))
        print(f"docs/images/{name}.png")


if __name__ == "__main__":
    main()
