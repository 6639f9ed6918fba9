"""The report of ``reproduce-study``: ``report.md`` and ``report.html``.

The report is built as a list of blocks (headings, paragraphs, tables, figures,
preformatted text, raw Markdown from other modules) and rendered twice: as Markdown
with figures linked relative to the report's directory, and as one self-contained
HTML file with the PNGs embedded (base64; :mod:`pipelines.study.render`). It holds
every figure of every stage, the stage timings, the resolved configuration, and a
table of key numbers set beside what the study reported (docs/reference.md section 1),
stating which profile made it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.study.engine import StageContext, StageRecord, write_json
from pipelines.study.render import Block, render_html, render_markdown

__all__ = ["STUDY", "params_report", "stage_report", "key_numbers", "render_markdown",
           "render_html", "figure_paths"]

#: What the study did and reported (docs/reference.md section 1; seed 002).
STUDY = {
    "system": "N = 30, L = 10 σ, T = 0.75, LJ cut at 3 σ (not shifted), hard walls",
    "samples": "10,000 per γ (γ = 0.1, 0.4, 0.7, 1.0)",
    "protocol": "independent: fresh uniform start, 2500 sweeps, keep the last",
    "equilibration": "not checked (docs/reference.md: at 2500 sweeps the energy is still "
                     "drifting at γ = 0.1, 0.4, 0.7)",
    "split": "80/20 (32,000 train / 8,000 test), no validation set",
    "arch": "Conv2D(60) → Conv2D(50) → Dense → latent 40; mirrored decoder; ≈ 4.6 M "
            "parameters",
    "latent_dim": "40",
    "loss": "mean MSE + λ · mean KL, λ = 3.5e-4; Adam 1e-3, batch 128",
    "epochs": "not stated in docs/reference.md",
    "mse": "not reported as a number",
    "pca": "PC1 + PC2 explain ≈ 4–15 % (slides: 8–15 %)",
    "probe": "not measured",
    "sweep": "lower MSE with larger latent dimension and with smaller λ (no numbers)",
    "js": "0.185 (after aligning to the original, an oracle; pairs with r < 1 skipped)",
    "w1": "not measured",
    "anomaly": "judged by eye from MSE histograms",
    "generate": "\"no apparent pattern\"; not measured",
}

def params_report(cfg: dict[str, Any]) -> dict[str, Any]:
    """The whole resolved configuration and the stages that failed (``_meta``: what
    the orchestrator knows about this invocation, of which only failures count)."""
    meta = cfg.get("_meta", {})
    return {"config": {k: v for k, v in cfg.items() if k != "_meta"},
            "failed": meta.get("failed", {})}


# ---------------------------------------------------------------- formatting

def _g(x: Any, fmt: str = ".3g") -> str:
    if x is None:
        return "—"
    if isinstance(x, float | int) and not isinstance(x, bool):
        return format(x, fmt)
    return str(x)


def _pm(v: Any, e: Any, fmt: str = ".3g") -> str:
    if v is None:
        return "—"
    return f"{_g(v, fmt)} ± {_g(e, '.2g')}"


def _get(d: Any, *path: str, default: Any = None) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


# ---------------------------------------------------------------- key numbers

def key_numbers(recs: dict[str, StageRecord], failed: dict[str, str],
                cfg: dict[str, Any]) -> list[list[str]]:
    """Rows (quantity, study, this run, note) of the key-number table."""
    def s(name: str) -> dict[str, Any] | None:
        r = recs.get(name)
        return r.summary if r is not None else None

    def missing(name: str) -> str:
        return f"— ({name}: {failed.get(name, 'not run')})"

    rows: list[list[str]] = []
    sysc = cfg["system"]
    data = s("data")
    rows.append(["system", STUDY["system"],
                 f"N = {sysc['n_particles']}, L = {sysc['box']:g} σ, T = "
                 f"{sysc['temperature']:g}, {cfg['data']['potential']} cut at "
                 f"{cfg['data']['cutoff']} σ", "same"])
    if data:
        per = data["per_gamma"]
        rows.append(["configurations", STUDY["samples"],
                     f"{next(iter(per.values()))['n']:,} per γ (γ = "
                     f"{', '.join(per)})",
                     "quick profile: reduced" if cfg["profile"] == "quick" else "study scale"])
        rows.append(["protocol", STUDY["protocol"],
                     f"{data['protocol']}, {data['sweeps']} sweeps", ""])
        verdicts = data.get("verdicts", {})
        checks = data.get("checks", {})
        if verdicts:
            n = data["n_particles"]
            txt = "; ".join(
                f"γ = {g}: {'ok' if v['passed'] else 'NOT EQUILIBRATED'} at {v['sweeps']} "
                f"sweeps (z(E) = {v['z']['energy']:+.1f}, bias E/N = "
                f"{v['bias']['energy'] / n:+.3f})" for g, v in verdicts.items())
            how = ("sweeps chosen per γ (`data.equilibrated = true`: smallest 2500 × 2^k "
                   "that passes)" if data.get("equilibrated_profile") else
                   "`data.equilibrated = true` chooses the sweeps per γ")
            rows.append(["equilibration (samples vs equilibrium reference)",
                         STUDY["equilibration"], txt,
                         f"E, ⟨y⟩, ⟨y²⟩ vs long reference chains, |z| < 3; {how}"])
            auto = data.get("auto_sweeps", {})
            if auto:
                change = "; ".join(
                    f"γ = {g}: {t[0]['sweeps']} → {t[-1]['sweeps']} sweeps, E/N "
                    f"{t[0]['mean']['energy'] / n:+.3f} → {t[-1]['mean']['energy'] / n:+.3f}"
                    for g, t in auto.items())
                rows.append(["equilibrated data vs the study's protocol",
                             STUDY["protocol"], change,
                             "`data.equilibrated = true`: the same samples at the study's "
                             "sweeps and at the sweeps that pass"])
        elif checks:
            txt = "; ".join(
                f"γ = {g}: {'ok' if c['passed'] else 'DRIFTING'} (z = {c['z']:+.1f}, "
                f"ΔE/N = {c['drift_per_particle']:+.3f})" for g, c in checks.items())
            n_chk = next(iter(checks.values()))["n_samples"]
            rows.append(["equilibration at the protocol's sweeps", STUDY["equilibration"],
                         txt, f"E after S vs 2S sweeps, {n_chk} paired samples, |z| < 3"])
        else:
            rows.append(["equilibration", STUDY["equilibration"], "not checked here",
                         "no verdict stored"])
    else:
        rows.append(["data", STUDY["samples"], missing("data"), ""])
    tr = s("train")
    if tr:
        sp = tr["split"]
        tot = sum(sp.values())
        rows.append(["split", STUDY["split"],
                     f"{100 * sp['train'] / tot:.0f}/{100 * sp['val'] / tot:.0f}/"
                     f"{100 * sp['test'] / tot:.0f} ({sp['train']:,} train / {sp['val']:,} "
                     f"val / {sp['test']:,} test), stratified by γ",
                     "same 20 % test share; validation (early stopping) taken from the "
                     "study's 80 %"])
        rows.append(["architecture", STUDY["arch"],
                     f"`{tr['arch']}`, {tr['n_parameters']:,} parameters",
                     "`vae.model.arch = \"study\"` selects the study's network"])
        rows.append(["latent dimension", STUDY["latent_dim"], str(tr["latent_dim"]), ""])
        rows.append(["loss, optimiser", STUDY["loss"],
                     f"{tr['loss_form']} = {tr['loss_weight']:g}; Adam "
                     f"{cfg['vae']['train']['lr']:g}, batch {cfg['vae']['train']['batch_size']}",
                     ""])
        rows.append(["epochs", STUDY["epochs"],
                     f"{tr['epochs_run']} run (max {cfg['vae']['train']['epochs']}), best "
                     f"{tr['best_epoch']}" + (", early stop" if tr["stopped_early"] else ""),
                     ""])
        mt = tr["metrics"]
        rows.append(["test MSE (z = μ)", STUDY["mse"],
                     f"{_g(mt.get('test_mse'), '.3g')} (input units) = "
                     f"{_g(mt.get('test_mse_sigma2'), '.3g')} σ²",
                     "per γ: " + ", ".join(f"{g}: {v:.2g}" for g, v in
                                           mt.get("test_recon_per_gamma", {}).items())])
    else:
        rows.append(["training", STUDY["loss"], missing("train"), ""])
    lt = s("latent")
    if lt:
        rows.append(["PCA of latent means, PC1 + PC2", STUDY["pca"],
                     f"{100 * lt['pc12']:.1f} %", f"{lt['n_test']} test configurations"])
        rows.append(["γ probe (linear, test R²)", STUDY["probe"],
                     f"{lt['probe']['r2_test']:.3f}",
                     f"{lt['active_dimensions']} of {lt['latent_dim']} dimensions active"])
    else:
        rows.append(["latent PCA", STUDY["pca"], missing("latent"), ""])
    sw = s("sweep")
    if sw:
        t = sw["trends"]
        rows.append(["sweep trends", STUDY["sweep"],
                     f"MSE falls with latent dim in {t['mse_falls_with_latent_dim']}; "
                     f"rises with λ in {t['mse_rises_with_weight']}",
                     f"{len(sw['rows'])} runs, {cfg['sweep']['epochs']} epochs each"])
    else:
        rows.append(["sweep", STUDY["sweep"], missing("sweep"), ""])
    rc = s("reconstruct")
    if rc:
        v = rc["methods"]["vae"]["pooled"]
        e = rc["methods"]["exact"]["pooled"]
        rows.append(["energy JS, original vs reconstructed", STUDY["js"],
                     f"VAE: {_pm(v['energy_js'], v['energy_js_err'])} (floor "
                     f"{v['energy_js_floor']:.3f}); exact-matrix control: "
                     f"{_pm(e['energy_js'], e['energy_js_err'])}",
                     "no oracle, all pairs, gravity included; pooled test split, "
                     "30 equal-count bins"])
        vs = v["study_convention"]
        rows.append(["energy JS, the study's convention (pairs r < 1 skipped)", STUDY["js"],
                     f"VAE: {_pm(vs['energy_js'], vs['energy_js_err'])} (floor "
                     f"{vs['energy_js_floor']:.3f})",
                     "no oracle; pair energies do not depend on the orientation, so only "
                     "the gravity term differs from an oracle-aligned comparison"])
        rows.append(["energy W1 (ε per configuration)", STUDY["w1"],
                     f"VAE: {_pm(v['energy_w1'], v['energy_w1_err'])} (floor "
                     f"{_g(v['energy_w1_floor'])})",
                     f"median |ΔU| = {_g(v['energy_median_abs_diff'])} ε; "
                     f"{100 * v['overlap_fraction']:.0f} % of reconstructions have a pair "
                     f"closer than {rc['overlap_threshold_sigma']} σ "
                     f"(originals: {100 * v['overlap_fraction_original']:.0f} %)"])
        rows.append(["RMSD to the original (aligned, mirror allowed)", "not measured",
                     f"median {v['rmsd_median']:.2f} σ (VAE), "
                     f"{e['rmsd_median']:.1g} σ (exact control)", ""])
    else:
        rows.append(["energy JS", STUDY["js"], missing("reconstruct"), ""])
    an = s("anomaly")
    rows.append(["anomaly detection", STUDY["anomaly"],
                 _anomaly_line(an["result"]) if an else missing("anomaly"),
                 "ROC AUC; full table in the anomaly section" if an else ""])
    ge = s("generate")
    rows.append(["generation", STUDY["generate"],
                 _generate_line(ge["result"]) if ge else missing("generate"),
                 "full table in the generation section" if ge else ""])
    return rows


def _best_auc_rows(result: dict[str, Any]) -> list[tuple[str, str, float]]:
    """(set, score, AUC) of the best score per set, if the summary has AUCs."""
    out = []
    sets = result.get("results") if isinstance(result, dict) else None
    if isinstance(sets, dict):
        for name, scores in sets.items():
            if isinstance(scores, dict):
                best = max(((k, v.get("auc")) for k, v in scores.items()
                            if isinstance(v, dict) and isinstance(v.get("auc"), float | int)),
                           key=lambda kv: kv[1], default=None)
                if best:
                    out.append((name, best[0], float(best[1])))
    return out


def _anomaly_line(result: dict[str, Any]) -> str:
    rows = _best_auc_rows(result)
    if not rows:
        return "see the anomaly section"
    return "best AUC per set: " + "; ".join(f"{n}: {a:.2f} ({k})" for n, k, a in rows)


def _generate_line(result: dict[str, Any]) -> str:
    """Best prior per gamma (energy W1 / MC floor) and the speed ratio."""
    per = _get(result, "targets", "per_gamma")
    if not isinstance(per, dict) or not per:
        return "see the generation section"
    parts = [f"γ = {g}: {d['best_prior']} {_g(d['best_ratio'], '.3g')}× floor"
             for g, d in per.items()]
    out = "energy W1 of the best prior: " + "; ".join(parts)
    out += (" (target ≤ 3× at every γ: " + ("met" if _get(result, "targets",
                                                             "energy_w1_all_gammas")
                                            else "NOT met") + ")")
    sp = _get(result, "speed")
    if isinstance(sp, dict) and sp.get("ratio") is not None:
        out += (f"; {_g(sp.get('generation_rate_per_s'), '.3g')} configurations/s vs sampler "
                f"{_g(sp.get('sampler_rate_per_s'), '.3g')}/s = {_g(sp['ratio'], '.3g')}× "
                f"(target ≥ 1000×: {'met' if sp['ratio'] >= 1000 else 'NOT met'})")
    return out


# ---------------------------------------------------------------- blocks

def figure_paths(recs: dict[str, StageRecord], root: Path) -> list[Path]:
    """Every figure of every stage, as paths relative to the output directory."""
    out = []
    for r in recs.values():
        out.extend((r.dir / f).resolve().relative_to(root.resolve()) for f in r.figures)
    return out


def _stage_blocks(name: str, heading: str, rec: StageRecord | None, failed: dict[str, str],
                  root: Path) -> list[Block]:
    blocks: list[Block] = [("h", 2, heading or name)]
    if rec is None:
        blocks.append(("p", f"**Not available:** {failed.get(name, 'stage not run')}"))
        return blocks
    s = rec.summary
    module_md = _module_markdown(rec)
    if module_md is not None:
        blocks.append(("md", module_md))
    else:
        extra = _DETAIL.get(name)
        if extra is not None:
            blocks.extend(extra(s))
    for f in rec.figures:
        rel = (rec.dir / f).resolve().relative_to(root.resolve())
        blocks.append(("img", str(rel), f"{name}/{f}"))
    return blocks


def _detail_data(s: dict[str, Any]) -> list[Block]:
    rows = []
    n = s.get("n_particles", 30)
    for g, d in s["per_gamma"].items():
        v = s.get("verdicts", {}).get(g)
        sw = s.get("sweeps_per_gamma", {}).get(g, s["sweeps"])
        rows.append([g, f"{d['n']:,}", str(sw), _pm(d["energy_per_particle"],
                                                     d["energy_per_particle_err"], ".4f"),
                     f"{d['acceptance']:.3f}",
                     "—" if v is None else (
                         f"{v['ref_mean']['energy'] / n:.4f} ± {v['ref_err']['energy'] / n:.4f}"
                         f" (z(E) = {v['z']['energy']:+.1f}, max |z| = "
                         f"{max(abs(z) for z in v['z'].values()):.1f}) "
                         f"{'ok' if v['passed'] else 'NOT EQUILIBRATED'}")])
    return [("p", f"`{s['file']}`: {s['n_total']:,} configurations, {s['protocol']} "
                  f"protocol."),
            ("table", ["γ", "configurations", "sweeps", "E/N (ε)", "acceptance",
                       "equilibrium E/N (reference chains) and verdict"], rows)]


def _detail_anomaly_data(s: dict[str, Any]) -> list[Block]:
    rows = [[k, f"`{v}`"] for k, v in s.get("sets", {}).items()]
    return [("table", ["set", "file"], rows)] if rows else []


def _detail_train(s: dict[str, Any]) -> list[Block]:
    mt = s["metrics"]
    rows = [[g, f"{v:.3g}"] for g, v in mt.get("test_recon_per_gamma", {}).items()]
    return [("p", f"`{s['arch']}` VAE, latent {s['latent_dim']}, {s['n_parameters']:,} "
                  f"parameters; {s['loss_form']} = {s['loss_weight']:g}. Best epoch "
                  f"{s['best_epoch']} of {s['epochs_run']}; test MSE {_g(mt.get('test_mse'))} "
                  f"(input units), {_g(mt.get('test_mse_sigma2'))} σ²; mean "
                  f"{_g(mt.get('mean_epoch_time_s'))} s per epoch."),
            ("table", ["γ", "test MSE (input units)"], rows)]


def _detail_sweep(s: dict[str, Any]) -> list[Block]:
    rows = [[str(r["latent_dim"]), f"{r['weight']:g}", f"{r['test_recon']:.4g}",
             f"{r['test_kl_total']:.3g}", str(r["active_dims"]), str(r["best_epoch"])]
            for r in s["rows"]]
    t = s["trends"]
    return [("p", f"{s['n_configurations']:,} configurations per run. Test MSE falls with "
                  f"the latent dimension in {t['mse_falls_with_latent_dim']} and rises with λ "
                  f"in {t['mse_rises_with_weight']}."),
            ("table", ["latent dim", "λ", "test MSE", "test KL (nats)", "active dims",
                       "best epoch"], rows)]


def _detail_latent(s: dict[str, Any]) -> list[Block]:
    r = s["pca_explained_variance_ratio"]
    return [("p", f"PCA of the test latent means: PC1 {100 * r[0]:.1f} %, PC2 "
                  f"{100 * r[1]:.1f} % (together {100 * s['pc12']:.1f} %). Linear γ probe: "
                  f"test R² = {s['probe']['r2_test']:.3f}. {s['active_dimensions']} of "
                  f"{s['latent_dim']} latent dimensions active (KL > 0.01 nats).")]


def _detail_reconstruct(s: dict[str, Any]) -> list[Block]:
    rows = []
    for method, label in (("vae", "VAE"), ("vae_refined", "VAE, refined latents"),
                          ("exact", "exact")):
        if method not in s["methods"]:
            continue
        m = s["methods"][method]
        for g, d in list(m["per_gamma"].items()) + [("all", m["pooled"])]:
            rows.append([label, g, str(d["n"]), _pm(d["energy_js"], d["energy_js_err"]),
                         f"{d['energy_js_floor']:.3f}",
                         _pm(d["study_convention"]["energy_js"],
                             d["study_convention"]["energy_js_err"]),
                         _pm(d["energy_w1"], d["energy_w1_err"]),
                         _g(d["energy_w1_floor"]), _g(d["energy_median_abs_diff"]),
                         f"{d['rmsd_median']:.2g}", f"{100 * d['overlap_fraction']:.0f} %",
                         f"{100 * d['fits_fraction']:.0f} %"])
    return [("p", f"{s['n_test']:,} test configurations: decoded matrices decode(μ_z(x)) → "
                  f"Gram embedding → {s.get('placement', 'edge')} placement, never "
                  "aligned to the original; the exact "
                  "matrices of the same configurations go through the same steps as a "
                  f"control. Energies: {s['potential']} cut at {s['cutoff']} σ plus gravity, "
                  "every pair counted. Floors: the same statistic between the original "
                  "sample and a bootstrap resample of itself."),
            ("table", ["input", "γ", "n", "JS", "JS floor", "JS, r < 1 skipped", "W1 (ε)",
                       "W1 floor",
                       "median |ΔU| (ε)", "median RMSD, mirror allowed (σ)",
                       f"pair < {s['overlap_threshold_sigma']} σ", "fits box"], rows)]


def _module_markdown(rec: StageRecord) -> str | None:
    """The Markdown report a stage's module wrote (``<stage>.md``, e.g. anomaly.md,
    generate.md), without its title and figure links (the report shows the figures),
    headings one level down; None if there is none."""
    p = rec.dir / f"{rec.name}.md"
    if not p.is_file():
        return None
    out, skip = [], False
    for ln in p.read_text().splitlines():
        heading = re.match(r"(#+)\s+(.*)", ln)
        if heading and len(heading.group(1)) == 1:
            continue
        if heading:
            skip = heading.group(2).strip().lower() == "figures"
            if skip:
                continue
            ln = "#" + ln
        if skip or ln.strip().startswith("!["):
            continue
        out.append(ln)
    return "\n".join(out).strip()


def _detail_external(s: dict[str, Any]) -> list[Block]:
    res = s.get("result", {})
    blocks: list[Block] = []
    for k in ("table", "markdown", "table_md", "markdown_table"):
        if isinstance(res, dict) and isinstance(res.get(k), str):
            blocks.append(("md", res[k]))
            break
    else:
        rows = _best_auc_rows(res)
        if rows:
            blocks.append(("table", ["set", "best score", "AUC"],
                           [[n, k, f"{a:.3f}"] for n, k, a in rows]))
    return blocks


_DETAIL: dict[str, Callable[[dict[str, Any]], list[Block]]] = {
    "data": _detail_data, "anomaly_data": _detail_anomaly_data, "train": _detail_train,
    "sweep": _detail_sweep, "latent": _detail_latent, "reconstruct": _detail_reconstruct,
    "anomaly": _detail_external, "generate": _detail_external,
}


def build_blocks(recs: dict[str, StageRecord], failed: dict[str, str],
                 timings: list[list[str]], cfg: dict[str, Any], root: Path,
                 meta: dict[str, Any]) -> list[Block]:
    prof = cfg["profile"]
    blocks: list[Block] = [
        ("h", 1, f"Reproduction of the LCP-B 2023 VAE study ({prof} profile)"),
        ("p", f"Made by `{meta['command']}` on {meta['date']} with ljvae {meta['version']}. "
              + ("**Quick profile:** a few hundred configurations per γ and a few epochs, "
                 "so that the whole study runs in minutes. Its numbers show that every "
                 "step works and roughly where it lands; they are not the study's scale "
                 "(run `reproduce-study --full` for that)." if prof == "quick" else
                 "**Full profile:** the study's data scale (10,000 configurations per γ) "
                 "and the full latent-dimension × λ grid.")
              + (" Some stages did not finish: " + "; ".join(
                  f"{k}: {v}" for k, v in failed.items()) if failed else "")),
        ("h", 2, "Key numbers: this run beside the study"),
        ("p", "Study values from docs/reference.md section 1 (the study's slides and code). "
              "Differences in method are stated in the last column."),
        ("table", ["quantity", "study", f"this run ({prof})", "note"],
         key_numbers(recs, failed, cfg)),
        ("h", 2, "Stages"),
        ("table", ["stage", "status", "time (s)", "cache key"], timings),
    ]
    # the study's stages in order, with their report headings (from the stage registry,
    # passed in by the orchestrator)
    headings = meta.get("headings") or {n: n for n in [*recs, *failed]}
    for name, heading in headings.items():
        blocks.extend(_stage_blocks(name, heading, recs.get(name), failed, root))
    blocks.append(("h", 2, "Resolved configuration"))
    blocks.append(("p", "Also saved as `config.resolved.json` next to this report; pass "
                        "a TOML file with `--config` to change any key."))
    blocks.append(("pre", json.dumps(cfg, indent=1, sort_keys=True)))
    return blocks


# ---------------------------------------------------------------- the stage

def stage_report(ctx: StageContext) -> dict[str, Any]:
    """Write ``report.md``, ``report.html`` and ``config.resolved.json``."""
    from mcsim.clitools import atomic_output

    meta = ctx.config.get("_meta", {})
    cfg = ctx.params["config"]
    root = ctx.dir.parent
    failed = ctx.params["failed"]
    timings = [[n, r.status, f"{r.seconds:.1f}", f"`{r.key}`"] for n, r in ctx.deps.items()]
    timings += [[n, "FAILED", "—", why] for n, why in failed.items()]
    blocks = build_blocks(ctx.deps, failed, timings, cfg, root, meta)
    write_json(ctx.dir / "config.resolved.json", cfg)
    with atomic_output(ctx.dir / "report.md", overwrite=True) as tmp:
        tmp.write_text(render_markdown(blocks))
    with atomic_output(ctx.dir / "report.html", overwrite=True) as tmp:
        tmp.write_text(render_html(blocks, root, f"ljvae study reproduction ({cfg['profile']})"))
    figs = [str(p) for p in figure_paths(ctx.deps, root)]
    return {"report": ["report.md", "report.html"], "figures_linked": figs,
            "key_numbers": key_numbers(ctx.deps, failed, cfg), "failed": failed}
