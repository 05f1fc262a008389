#!/usr/bin/python3
"""torch.optim.NAdam CPU step time on ONE thread, for `npm run bench` (scripts/bench.ts spawns it).

Usage: /usr/bin/python3 scripts/bench_torch.py N [N ...] --warmup W --reps R [--threads T]
(--threads T also measures with T intra-op threads, after the one-thread rows; 1 = only one thread.)
Prints one JSON object per line: {"n", "variant", "median_ms", "min_ms", "times_ms", "torch", "threads"}.
On a machine without torch it prints {"error": "..."} and exits 3, so the caller can say so loudly.

The problem is the same as the JS side's: one float32 parameter of N elements, a fixed random
gradient, torch's defaults (momentum_decay=0.004, the torch counterpart of schedule_decay).
The timed region is `optimizer.step()` alone (the gradient is already in `p.grad`).
"""
import inspect
import json
import sys
import time


def parse(argv):
    sizes, opts, key = [], {"warmup": 3, "reps": 15, "threads": 1}, None
    for a in argv:
        if key:
            opts[key] = int(a)
            key = None
        elif a.startswith("--"):
            key = a[2:]
        else:
            sizes.append(int(float(a)))
    return sizes, opts


def default_foreach(torch):
    """What NAdam's foreach=None resolves to, read from the installed source (1.13: False)."""
    import torch.optim.nadam as nadam_module

    src = inspect.getsource(nadam_module.nadam)
    if "if foreach is None:" in src and "foreach = False" in src:
        return False
    return None  # unknown: the caller also measures the default explicitly


def measure(torch, n, foreach, warmup, reps):
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.rand(n, dtype=torch.float32) - 0.5)
    p.grad = (torch.rand(n, dtype=torch.float32) - 0.5) * 1e-2
    kwargs = {} if foreach == "default" else {"foreach": foreach}
    opt = torch.optim.NAdam([p], lr=1e-3, **kwargs)
    times = []
    for r in range(warmup + reps):
        t0 = time.perf_counter()
        opt.step()
        t1 = time.perf_counter()
        if r >= warmup:
            times.append((t1 - t0) * 1e3)
    s = sorted(times)
    return {"median_ms": s[len(s) // 2], "min_ms": s[0], "times_ms": times}


def main():
    sizes, opts = parse(sys.argv[1:])
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure means "no torch here"
        print(json.dumps({"error": f"{sys.executable} cannot import torch: {e}"}))
        sys.exit(3)
    resolved = default_foreach(torch)
    variants = [False, True] + (["default"] if resolved is None else [])
    thread_counts = [1] + ([opts["threads"]] if opts["threads"] > 1 else [])
    for n, threads in [(n, t) for t in thread_counts for n in sizes]:
        torch.set_num_threads(threads)
        for foreach in variants:
            with torch.no_grad():
                result = measure(torch, n, foreach, opts["warmup"], opts["reps"])
            name = f"foreach={foreach}" if foreach != "default" else "foreach=None (default)"
            if foreach is resolved:
                name += " (= the default)"
            print(json.dumps({"n": n, "variant": name, "torch": torch.__version__, "threads": torch.get_num_threads(), **result}), flush=True)


if __name__ == "__main__":
    main()
