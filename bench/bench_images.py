"""Images through the server against diffusers called directly, in one run (issue 11's figures).

    venv/bin/python bench/bench_images.py        # --runs 5 --images 10 --steps 10

The tiny random-weight pipeline of the tests (`tests/zoo/tiny_diffusion.py`, 64×64) on one torch thread,
served in-process (the app with its lifespan over httpx's ASGI transport) and called directly; runs
alternate, medians compared. Then the RSS of the process with the pipeline loaded and after unloading it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lollms_server.app import create_app  # noqa: E402
from tests.conftest import running_client  # noqa: E402
from tests.helpers import make_config, write_instance  # noqa: E402

PROMPT = "a red cat"


def rss_mb() -> int:
    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) // 1024


def config_for(root: Path, model: Path):  # type: ignore[no-untyped-def]
    config = make_config(root, bindings_map={"sd": "diffusers_binding"}, defaults={"tti_binding": "sd"})
    folder = config.paths.models_folder / "diffusers_models"
    folder.mkdir(parents=True)
    (folder / "tiny-sd").symlink_to(model, target_is_directory=True)
    write_instance(config, "sd", {"type": "diffusers_binding", "default_model": "tiny-sd", "num_threads": 1})
    return config


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--images", type=int, default=10, help="images per run")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()

    import torch
    from diffusers import AutoPipelineForText2Image

    from tests.zoo.tiny_diffusion import build_tiny_pipeline

    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp())
    model = build_tiny_pipeline(root / "model" / "tiny-sd")
    direct = AutoPipelineForText2Image.from_pretrained(model, torch_dtype=torch.float32, local_files_only=True)
    direct.set_progress_bar_config(disable=True)

    def direct_run() -> float:
        started = time.perf_counter()
        for _ in range(args.images):
            image = direct(PROMPT, num_inference_steps=args.steps, generator=torch.Generator().manual_seed(1)).images[0]
            image.save(io.BytesIO(), format="PNG")
        return args.images / (time.perf_counter() - started)

    app = create_app(config_for(root / "server", model))
    body = {
        "input_data": [{"type": "text", "role": "user_prompt", "data": PROMPT}],
        "generation_type": "tti",
        "parameters": {"num_inference_steps": args.steps, "seed": 1},
    }
    async with running_client(app) as client:

        async def served_run() -> float:
            started = time.perf_counter()
            for _ in range(args.images):
                response = await client.post("/api/v1/generate", json=body)
                assert response.status_code == 200, response.text
            return args.images / (time.perf_counter() - started)

        await served_run()  # warm-up: loads the pipeline in the server
        direct_run()
        served_rates, direct_rates = [], []
        for _ in range(args.runs):
            direct_rates.append(direct_run())
            served_rates.append(await served_run())
        served, plain = statistics.median(served_rates), statistics.median(direct_rates)
        print(f"images/s, 64x64, {args.steps} steps, median of {args.runs} alternating runs of {args.images}:")
        print(f"   diffusers directly : {plain:6.2f}")
        print(f"   through the server : {served:6.2f}   ratio {served / plain:.3f}")
        gc.collect()
        loaded = rss_mb()
        await app.state.binding_manager.instances["sd"].binding.unload_model()
        gc.collect()
        print(f"RSS with the pipeline loaded {loaded} MB, after unloading it {rss_mb()} MB")


if __name__ == "__main__":
    asyncio.run(main())
