#!/usr/bin/env python3
"""How the AI engine's default settings are chosen, and what they score on
data that took no part in the choice.

For each benchmark, every setting of a small grid is run once; then, for
each fold, the setting with the best score on the rest is scored on the
fold. The mean of those fold scores is the held-out figure, printed beside
the full-set score of the shipped default; the shipped default must be the
setting the same procedure picks on the whole set (`--check`).

  miner  loghub-2k and the development systems of other_logs.py, one
         system left out at a time (other_logs.py's held-out systems take no
         part); grouping accuracy, higher is better.
  nab    NAB's files, sorted, split by odd and even position; the NAB
         standard score of each half by its reference scorer, higher is
         better.
  m4     M4 Hourly series split by odd and even id; for a half, the OWA
         formula with the full set's Naive2 figures (sMAPE 18.383, MASE
         2.395), lower is better; the full set by the reference scorer.

Usage:
  choose_settings.py miner --bench BIN --loghub DIR --scorer log_ga.py [--check]
  choose_settings.py nab --bench BIN --nab DIR --scorer nab_score.py [--check]
  choose_settings.py m4 --bench BIN --m4 DIR --scorer m4_score.py [--check]
BIN is the bench's binary (`cargo test -p ophion-benches --bench NAME
--no-run`; scripts/ai-scores finds it).
"""
import argparse, csv, functools, itertools, json, os, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import other_logs  # noqa: E402

# Each grid holds the shipped default (ophion-ai's Default impls).
GRIDS = {
    "miner": {"similarity": [0.6, 0.7, 0.8], "variable_after": [3, 4, 5, 6, 8]},
    "nab": {"hold": [60, 120, 240], "hold_fraction": [0.0, 0.03], "novelty_weight": [2.0, 4.0],
            "shift_weight": [0.4, 0.8]},
    "m4": {"naive_weight": [0.3, 0.5, 0.7], "week_weight": [0.2, 0.35, 0.5], "profile_periods": [5, 7]},
}
DEFAULTS = {
    "miner": {"similarity": 0.7, "variable_after": 4},
    "nab": {"hold": 60, "hold_fraction": 0.03, "novelty_weight": 4.0, "shift_weight": 0.8},
    "m4": {"naive_weight": 0.7, "week_weight": 0.35, "profile_periods": 5},
}
HIGHER_IS_BETTER = {"miner": True, "nab": True, "m4": False}


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


class Miner:
    """Per-system grouping accuracy; a subset's score is their mean."""

    def __init__(self, a, tmp):
        self.a, self.tmp = a, tmp

    def units(self):
        names = sorted(os.listdir(self.a.loghub))
        return ["loghub/" + n for n in names if os.path.isdir(os.path.join(self.a.loghub, n))] + \
            ["other/" + s for s in other_logs.DEVELOPMENT]

    def folds(self, units):
        return [[u] for u in units]

    @functools.lru_cache(maxsize=None)
    def per_unit(self, config):
        out = os.path.join(self.tmp, "lh")
        run([self.a.bench, "--loghub", self.a.loghub, "--out", out, "--config", config])
        text = run([sys.executable, self.a.scorer, "--loghub", self.a.loghub, "--results", out])
        scores = {"loghub/" + r[0]: float(r[1]) for r in map(str.split, text.splitlines())
                  if len(r) == 2 and r[0] != "mean"}
        for system in other_logs.DEVELOPMENT:
            data = other_logs.generate(other_logs.DEVELOPMENT, system, 2000, 1)
            pred = other_logs.ophion(self.a.bench, [m for _, m in data], self.tmp, config)
            scores["other/" + system] = other_logs.ga([t for t, _ in data], pred)
        return scores

    def score(self, config, units):
        s = self.per_unit(config)
        return sum(s[u] for u in units) / len(units)

    def full(self, config, units):
        return self.score(config, units)


class Nab:
    """NAB standard score of a subset of files, by the reference scorer."""

    def __init__(self, a, tmp):
        self.a, self.tmp = a, tmp

    def units(self):
        data = os.path.join(self.a.nab, "data")
        return sorted(os.path.relpath(os.path.join(d, f), data)
                      for d, _, fs in os.walk(data) for f in fs if f.endswith(".csv"))

    def folds(self, units):
        return [units[0::2], units[1::2]]

    @functools.lru_cache(maxsize=None)
    def results(self, config):
        out = os.path.join(self.tmp, "nab-%d" % abs(hash(config)))
        run([self.a.bench, "--nab", self.a.nab, "--out", out, "--config", config])
        return out

    @functools.lru_cache(maxsize=None)
    def _score(self, config, units):
        cmd = [sys.executable, self.a.scorer, "--nab", self.a.nab, "--results", self.results(config),
               "--profile", "standard"]
        if units is not None:
            cmd += ["--only", ",".join(units)]
        line = [l for l in run(cmd).splitlines() if l.startswith("standard")][0]
        return float(line.split()[1])

    def score(self, config, units):
        return self._score(config, tuple(units))

    def full(self, config, units):
        return self._score(config, None)


class M4:
    """OWA of a subset of series (full-set Naive2 figures)."""
    NAIVE2_SMAPE, NAIVE2_MASE = 18.383, 2.395

    def __init__(self, a, tmp):
        self.a, self.tmp = a, tmp
        self.train = self.read(os.path.join(a.m4, "Hourly-train.csv"))
        self.test = self.read(os.path.join(a.m4, "Hourly-test.csv"))

    @staticmethod
    def read(path):
        with open(path, newline="") as f:
            rows = list(csv.reader(f))[1:]
        return {r[0]: [float(v) for v in r[1:] if v != ""] for r in rows}

    def units(self):
        return sorted(self.test, key=lambda s: int(s[1:]))

    def folds(self, units):
        return [[u for u in units if int(u[1:]) % 2 == 1], [u for u in units if int(u[1:]) % 2 == 0]]

    @functools.lru_cache(maxsize=None)
    def forecasts(self, config):
        out = os.path.join(self.tmp, "m4-%d.csv" % abs(hash(config)))
        run([self.a.bench, "--m4", self.a.m4, "--out", out, "--config", config])
        return out

    def score(self, config, units):
        fc = self.read(self.forecasts(config))
        smapes, mases = [], []
        for sid in units:
            actual, f, hist = self.test[sid], fc[sid], self.train[sid]
            smapes.append(sum(200.0 * abs(x - p) / (abs(x) + abs(p)) if abs(x) + abs(p) else 0.0
                              for x, p in zip(actual, f)) / len(actual))
            scale = sum(abs(hist[i] - hist[i - 24]) for i in range(24, len(hist))) / (len(hist) - 24)
            mases.append(sum(abs(x - p) for x, p in zip(actual, f)) / len(actual) / scale)
        return 0.5 * (sum(smapes) / len(smapes) / self.NAIVE2_SMAPE + sum(mases) / len(mases) / self.NAIVE2_MASE)

    def full(self, config, units):
        text = run([sys.executable, self.a.scorer, "--m4", self.a.m4, "--forecasts", self.forecasts(config)])
        return float(text.split("OWA")[1].split()[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("benchmark", choices=sorted(GRIDS))
    ap.add_argument("--bench", required=True)
    ap.add_argument("--scorer", required=True)
    ap.add_argument("--loghub")
    ap.add_argument("--nab")
    ap.add_argument("--m4")
    ap.add_argument("--check", action="store_true", help="fail unless the shipped default is the full-set choice")
    a = ap.parse_args()
    kind = a.benchmark
    grid, sign = GRIDS[kind], (1 if HIGHER_IS_BETTER[kind] else -1)
    configs = [json.dumps(dict(zip(grid, v)), sort_keys=True) for v in itertools.product(*grid.values())]
    default = json.dumps(DEFAULTS[kind], sort_keys=True)
    assert default in configs, "the grid must hold the default"
    with tempfile.TemporaryDirectory() as tmp:
        bench = {"miner": Miner, "nab": Nab, "m4": M4}[kind](a, tmp)
        units = bench.units()
        best = lambda among: max(configs, key=lambda c: sign * bench.score(c, among))
        held = []
        for fold in bench.folds(units):
            rest = [u for u in units if u not in set(fold)]
            chosen = best(rest)
            held.append(bench.score(chosen, fold))
            if len(fold) > 1:
                print("%s: chose %s on the other half, scored %.4f on %d held-out units (full-set default there %.4f)"
                      % (kind, chosen, held[-1], len(fold), bench.score(default, fold)))
        choice = best(units)
        print("%s: full-set choice %s, full score %.4f" % (kind, choice, bench.full(choice, units)))
        print("%s: shipped default %s, full score %.4f" % (kind, default, bench.full(default, units)))
        print("%s: held-out score %.4f (mean over %d folds)" % (kind, sum(held) / len(held), len(held)))
    if a.check and choice != default:
        print("choose_settings %s: FAILED, the shipped default %s is not the choice %s" % (kind, default, choice),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
