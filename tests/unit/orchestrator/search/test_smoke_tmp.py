from helpers.cli import run_llem
from helpers.results import Figures
from helpers.simulated import search_run, search_study


def landscape(swept):
    n = swept["n_prompts"]
    b = swept["max_new_tokens"]
    if n == 13:
        return "boom"
    return Figures(
        tokens_per_s=100.0 + b, j_per_token=0.1 + (n - 7) ** 2 / 100 + (b - 40) ** 2 / 1e4
    )


def test_smoke(tmp_path):
    study = search_study(
        {
            "objective": {"minimize": "energy.j_per_output_token"},
            "constraints": ["throughput.output_tokens_per_s >= 120"],
            "space": {
                "n_prompts": {"low": 1, "high": 20},
                "max_new_tokens": {"low": 8, "high": 64},
            },
            "trials": 15,
            "seed": 1,
            "confirm": {"top": 2, "cycles": 3},
        }
    )
    run = search_run(tmp_path, study, landscape)
    print(run.run())
    d = tmp_path / "study"
    for args in (
        ["results", "show", str(d)],
        ["results", "export", str(d), "--trials"],
        ["results", "plot", str(d)],
        ["results", "report", str(d)],
    ):
        code, out, err = run_llem(*args)
        print(code, out[-3000:], err[-2000:])
    code, out, err = run_llem("results", "show", str(d), "--json")
    print(out[:200], out[-1500:])
