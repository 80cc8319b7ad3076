"""Summarise py-spy raw (collapsed) stacks: where the samples are, inclusive and self, by function.

    python bench/stacks.py /tmp/prof/filing-*.txt [--top 40] [--grep hybrid_store]

Inclusive: the share of samples with the function anywhere on the stack (counted once per stack);
self: the share with it on top. Idle threads (waiting in the event loop's selector or a thread
pool's queue) are counted apart, so the shares are of the time spent working.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

IDLE = re.compile(r"select \(selectors.py|_worker \(concurrent/futures/thread.py:\d+\);get \(queue.py|"
                  r"wait \(threading.py|run_forever|_run_once \(asyncio/base_events.py")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--grep", default="", help="only functions whose frame contains this")
    args = parser.parse_args()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    busy = idle = 0
    for path in args.files:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            top = frames[-1]
            if IDLE.search(top) or "select (selectors" in top or "_worker (concurrent" in stack and "get (queue" in top:
                idle += n
                continue
            busy += n
            own[re.sub(r":\d+\)", ")", top)] += n
            for f in {re.sub(r":\d+\)", ")", f) for f in frames}:
                inclusive[f] += n
    print(f"{busy} busy samples, {idle} idle")
    for title, counter in (("inclusive", inclusive), ("self", own)):
        print(f"\n== {title} ==")
        for name, n in counter.most_common():
            if args.grep in name:
                print(f"{n / busy:6.1%}  {name}")
                args.top -= 1
                if args.top <= 0:
                    break
        args.top = parser.parse_args().top


if __name__ == "__main__":
    main()
