"""Long-running RTMP session fuzz from the ffmpeg capture (the CI test runs 10,000 cases).

Usage: python scripts/fuzz_rtmp.py [--seconds 3600] [--seed N]
Prints progress every 10 s; on a failure prints the seed and writes the input to
``fuzz-failure-<seed>.bin`` (reproduce with ``check_session(data, [], True)``).
"""

from __future__ import annotations

import argparse
import random
import time
import traceback
from pathlib import Path

from tests.media.rtmp.capture_fuzz import CAPTURE, check_session, mutate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3600.0)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    master = random.Random(args.seed)
    deadline = time.monotonic() + args.seconds
    cases = 0
    report = time.monotonic() + 10
    while time.monotonic() < deadline:
        seed = master.getrandbits(32)
        rng = random.Random(seed)
        data = mutate(CAPTURE, rng)
        splits = [rng.randrange(len(data) + 1) for _ in range(rng.randint(0, 3))]
        accept = rng.random() < 0.8
        try:
            check_session(data, splits, accept)
        except Exception:
            path = Path(f"fuzz-failure-{seed}.bin")
            path.write_bytes(data)
            traceback.print_exc()
            print(f"FAILED: case seed {seed} (splits {splits}, accept {accept}) -> {path}")
            return 1
        cases += 1
        if time.monotonic() > report:
            report += 10
            print(f"{cases} cases, no failure (master seed {args.seed})", flush=True)
    print(f"done: {cases} cases, no failure (master seed {args.seed})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
