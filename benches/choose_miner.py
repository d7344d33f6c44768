#!/usr/bin/env python3
"""How the template miner's default settings were chosen, leaving one
system out at a time.

For every setting in a small grid it mines each loghub-2k system and each
development system of `other_logs.py` with the log_patterns bench binary,
then, for each system in turn, picks the setting with the best mean on the
*other* systems and scores it on the one left out. The mean of those
left-out scores is the figure a new kind of log can expect; it is printed
beside the full-set score of the chosen default. `other_logs.py`'s
held-out systems take no part here.

Usage: choose_miner.py --bench BIN --loghub DIR --scorer log_ga.py
  BIN: target/debug/deps/log_patterns-* (built by
  `cargo test -p ophion-benches --bench log_patterns`).
"""
import argparse, itertools, json, os, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import other_logs  # noqa: E402

GRID = {"similarity": [0.6, 0.7, 0.8], "variable_after": [3, 4, 5, 6, 8]}


def loghub_scores(bench, loghub, scorer, config, tmp):
    out = os.path.join(tmp, "lh")
    subprocess.run([bench, "--loghub", loghub, "--out", out, "--config", config], check=True,
                   stdout=subprocess.DEVNULL)
    text = subprocess.run([sys.executable, scorer, "--loghub", loghub, "--results", out], check=True,
                          capture_output=True, text=True).stdout
    rows = [line.split() for line in text.splitlines()]
    return {"loghub/" + r[0]: float(r[1]) for r in rows if len(r) == 2 and r[0] != "mean"}


def other_scores(bench, config, tmp):
    scores = {}
    for system in other_logs.DEVELOPMENT:
        data = other_logs.generate(other_logs.DEVELOPMENT, system, 2000, 1)
        truth = [t for t, _ in data]
        pred = other_logs.ophion(bench, [m for _, m in data], tmp, config)
        scores["other/" + system] = other_logs.ga(truth, pred)
    return scores


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True)
    ap.add_argument("--loghub", required=True)
    ap.add_argument("--scorer", required=True)
    ap.add_argument("--default", default='{"similarity": 0.7, "variable_after": 4}',
                    help="the shipped default, to check it is the full-set choice")
    ap.add_argument("--check", action="store_true", help="fail unless the default is the full-set choice")
    a = ap.parse_args()
    table = {}
    with tempfile.TemporaryDirectory() as tmp:
        for values in itertools.product(*GRID.values()):
            config = json.dumps(dict(zip(GRID, values)), sort_keys=True)
            table[config] = {**loghub_scores(a.bench, a.loghub, a.scorer, config, tmp),
                             **other_scores(a.bench, config, tmp)}
            mean = sum(table[config].values()) / len(table[config])
            print("%-45s mean GA %.4f over %d systems" % (config, mean, len(table[config])))
    systems = sorted(next(iter(table.values())))
    mean = lambda config, keep: sum(table[config][s] for s in keep) / len(keep)
    held = []
    for s in systems:
        rest = [x for x in systems if x != s]
        best = max(table, key=lambda c: mean(c, rest))
        held.append(table[best][s])
        print("left out %-22s chose %-45s scored %.4f" % (s, best, table[best][s]))
    full_best = max(table, key=lambda c: mean(c, systems))
    default = json.dumps(json.loads(a.default), sort_keys=True)
    lh = [s for s in systems if s.startswith("loghub/")]
    print("full-set choice %s: mean %.4f (loghub %.4f)" % (full_best, mean(full_best, systems), mean(full_best, lh)))
    print("default %s: mean %.4f (loghub %.4f)" % (default, mean(default, systems), mean(default, lh)))
    print("leave-one-out mean %.4f over %d systems (loghub only %.4f)" % (
        sum(held) / len(held), len(held),
        sum(h for h, s in zip(held, systems) if s.startswith("loghub/")) / len(lh)))
    if a.check and json.loads(full_best) != json.loads(default):
        print("choose_miner: FAILED, the shipped default %s is not the choice %s" % (default, full_best),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
