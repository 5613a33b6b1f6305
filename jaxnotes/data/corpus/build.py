"""The default corpus: music21's bundled scores rendered with fluidsynth, in MusicNet's layout.

Owns choosing the works (by size and seed), drawing each piece's random
choices, and the corpus folder: MusicNet's folders, metadata CSV, the resumable
per-piece rows, the completion summary and the CLI. What each size holds is `sizes`'s
table; rendering one piece (score -> MIDI -> audio -> labels) lives in `rendering`. Must
not import model, loop or metric code.

The test split holds whole works unseen in training, rendered with a
soundfont no training piece uses.
"""

import argparse
import csv
import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import re
import sys
import types

from jaxnotes import files
from jaxnotes.data import musicnet
from jaxnotes.data.corpus import rendering, scores
from jaxnotes.data.corpus.rendering import CorpusError, Piece
from jaxnotes.data.corpus.sizes import COMPOSERS, SIZES, SizePlan

FIRST_ID = 100000  # MusicNet's ids are below 3000: ours can never collide with them
# Bump when rendering changes what a corpus holds: the folder name includes it.
VERSION = 1
SCORE_EXTENSIONS = (".mxl", ".musicxml", ".xml", ".krn")
TRAIN_SOUNDFONTS = ("FluidR3_GM.sf2", "FluidR3Mono_GM.sf3", "TimGM6mb.sf2")
TEST_SOUNDFONT = "MuseScore_General.sf3"  # held out: the test measures a new timbre
COMPLETE_FILE = ".complete"  # written last: without it a folder is unfinished
PIECES_DIR = ".pieces"  # one JSON row per finished piece: a rerun resumes from these
METADATA_COLUMNS = (
    *("id", "composer", "composition", "movement", "ensemble", "source", "transcriber"),
    *("catalog_name", "seconds", "split", "work", "music21_path", "soundfont", "qpm"),
)

log = logging.getLogger(__name__)


TEXTURE_FIRST_ID = 200000  # ids of generated textures, after every score's
PIANO_NAME = "Salamander Grand Piano V3"  # the 'soundfont' column of sampled-piano pieces


def corpus_name(size: str, seed: int, exclude_works=()) -> str:
    """Folder name: every setting that changes the corpus is in it."""
    digest = hashlib.sha1(json.dumps(sorted(exclude_works)).encode()).hexdigest()[:8]
    return f"v{VERSION}-{size}-seed{seed}-x{digest}"


def corpus_root(data_config) -> str:
    """Where `ensure_corpus` keeps the corpus for these settings."""
    size, seed, exclude = _settings(data_config)
    cache = os.path.expanduser(data_config.cache_dir)
    return os.path.join(cache, "corpus", corpus_name(size, seed, exclude))


def _settings(data_config):
    size = data_config.corpus_size
    if size not in SIZES:
        raise ValueError(f"config.data.corpus_size={size!r}: expected one of {tuple(SIZES)}")
    return size, int(data_config.corpus_seed), tuple(data_config.exclude_works)


def ensure_corpus(data_config, progress: bool = True) -> str:
    """Renders the corpus these settings name unless it is complete; returns its root.

    Reads `cache_dir`, `corpus_size`, `corpus_seed`, `exclude_works` and (if it has one)
    `render_workers` of `data_config`. Finished pieces of an interrupted build are kept. Sizes
    that play the sampled piano fetch its samples first (`piano.ensure_samples`, from npm).

    Raises:
        CorpusError: fluidsynth or a soundfont is missing, or a split came out empty.
    """
    root = corpus_root(data_config)
    if os.path.exists(os.path.join(root, COMPLETE_FILE)):
        return root
    size, seed, exclude = _settings(data_config)
    pieces = plan_corpus(size, seed, exclude)
    fluidsynth = rendering.find_fluidsynth()
    names = sorted({p.soundfont for p in pieces if p.renderer == "fluidsynth"})
    fonts = {name: rendering.find_soundfont(name) for name in names}
    samples = None
    if any(p.renderer == "piano" for p in pieces):
        from jaxnotes.data.corpus import piano

        samples = piano.ensure_samples(os.path.expanduser(data_config.cache_dir), progress)
    for folder in (
        "",
        "train_data",
        "train_labels",
        "test_data",
        "test_labels",
        "midi",
        PIECES_DIR,
    ):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        # Temporary files of a build killed mid-write (one builder at a time per corpus).
        for leftover in files.remove_leftovers(os.path.join(root, folder)):
            log.info("removed %s, left by an interrupted render", leftover)
    from tqdm import tqdm  # deferred, like music21: a complete corpus needs neither

    todo = [p for p in pieces if not os.path.exists(_row_path(root, p))]
    jobs = [(p, root, fluidsynth, fonts.get(p.soundfont), samples) for p in todo]
    workers = max(1, int(getattr(data_config, "render_workers", 1)))
    bar = tqdm(
        total=len(pieces),
        initial=len(pieces) - len(todo),
        desc=f"corpus {size}",
        unit="piece",
        disable=not progress,
    )
    if workers == 1:
        for job in jobs:
            _render_one(*job)
            bar.update()
    else:  # pieces are independent: each worker writes its own files and row
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # 'spawn': the caller may have started JAX's threads, which a fork would copy half-held.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for _ in pool.map(_render_one, *zip(*jobs, strict=True)) if jobs else ():
                bar.update()
    bar.close()
    rows = []
    for piece in pieces:
        with open(_row_path(root, piece)) as f:
            rows.append(json.load(f))
    return _finish(root, size, seed, exclude, rows)


def _row_path(root: str, piece: Piece) -> str:
    return os.path.join(root, PIECES_DIR, f"{piece.piece_id}.json")


_SAMPLERS = {}  # one sampled piano per process: its decoded samples are reused


def _render_one(piece: Piece, root: str, fluidsynth: str, font: str | None, samples) -> None:
    """Renders one piece and writes its row (the mark that it is done)."""
    sampler = None
    if piece.renderer == "piano":
        from jaxnotes.data.corpus import piano

        if samples not in _SAMPLERS:
            _SAMPLERS[samples] = piano.PianoSampler(samples, rendering.SAMPLE_RATE)
        sampler = _SAMPLERS[samples]
    row = rendering.build_piece(piece, root, fluidsynth, font, piano=sampler)
    files.write_text(_row_path(root, piece), json.dumps(row))


def _finish(root, size, seed, exclude, rows) -> str:
    failed = [r for r in rows if "failed" in r]
    done = [r for r in rows if "failed" not in r]
    for split in musicnet.SPLITS:
        if not any(r["split"] == split for r in done):
            raise CorpusError(f"{root}: no {split} piece could be rendered ({len(failed)} failed)")
    metadata = os.path.join(root, musicnet.METADATA_FILE)
    with files.atomic_path(metadata) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, METADATA_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(sorted(done, key=lambda r: r["id"]))
    seconds = sum(r["duration_s"] for r in done)
    summary = {
        "size": size,
        "seed": seed,
        "exclude_works": list(exclude),
        "version": VERSION,
        "pieces": {s: sum(r["split"] == s for r in done) for s in musicnet.SPLITS},
        "failed": [r["music21_path"] for r in failed],
        "hours": seconds / 3600,
        "render_s": sum(r["render_s"] for r in done),
        "render_cpu_s": sum(r["render_cpu_s"] for r in done),
    }
    files.write_text(os.path.join(root, COMPLETE_FILE), json.dumps(summary, indent=1))
    return root


def read_summary(root: str) -> dict:
    """The summary a complete corpus keeps: pieces per split, hours, render seconds."""
    with open(os.path.join(root, COMPLETE_FILE)) as f:
        return json.load(f)


def list_candidates() -> list[tuple[str, str, str]]:
    """(music21 path, work, composer) of every score considered, sorted by path."""
    from music21 import corpus

    base = os.path.dirname(corpus.__file__)
    found = {}
    for composer in COMPOSERS:
        for path in corpus.getComposer(composer):
            rel = os.path.relpath(str(path), base).replace(os.sep, "/")
            stem, ext = os.path.splitext(rel)
            # Analyses (rntxt) hold no notes; a .krn twin of a MusicXML score is a duplicate.
            if ext not in SCORE_EXTENSIONS or "choraleAnalyses" in rel:
                continue
            if stem not in found or ext != ".krn":
                found[stem] = (rel, _work_of(rel), composer)
    return sorted(found.values())


def _work_of(rel: str) -> str:
    parts = rel.split("/")
    if parts[0] == "bach":  # chorales of one cantata (BWV number) are one work
        match = re.match(r"bwv(\d+)", parts[-1])
        return f"bach/bwv{match[1]}" if match else os.path.splitext(rel)[0]
    return "/".join(parts[:-1]) if len(parts) > 2 else os.path.splitext(rel)[0]


def _excluded(work_paths: dict, exclude_works) -> set[str]:
    """Works with any score matching an `exclude_works` path or prefix (extension optional)."""
    works = set()
    for entry in exclude_works:
        prefix = (
            os.path.splitext(entry.strip("/"))[0] if entry.endswith(SCORE_EXTENSIONS) else entry
        )
        hits = {w for w, paths in work_paths.items() if any(p.startswith(prefix) for p in paths)}
        if not hits:
            log.warning("config.data.exclude_works: %r matches no score of the corpus", entry)
        works |= hits
    return works


def plan_corpus(size: str, seed: int, exclude_works=()) -> list[Piece]:
    """The pieces a corpus renders, with all random choices; depends only on the arguments."""
    plan = SIZES[size]
    candidates = list_candidates()
    ids = {path: FIRST_ID + i for i, (path, _, _) in enumerate(candidates)}
    work_paths = {}
    for path, work, _ in candidates:
        work_paths.setdefault(work, []).append(path)
    rng = random.Random(f"jaxnotes-corpus:{seed}")
    test_works = set()
    chosen = []
    for composer in COMPOSERS:
        works = sorted({w for _, w, c in candidates if c == composer})
        rng.shuffle(works)
        count = plan.test.get(composer, 0)
        if plan.test_fraction:
            count = math.ceil(plan.test_fraction * sum(len(work_paths[w]) for w in works))
        for work in works:  # whole works, in shuffled order, until the count is reached
            if count <= 0:
                break
            test_works.add(work)
            # The full corpus keeps every movement of a test work; smaller ones count pieces.
            taken = sorted(work_paths[work])[: None if plan.test_fraction else count]
            chosen += [(p, "test") for p in taken]
            count -= len(taken)
    held_out = test_works | _excluded(work_paths, exclude_works)
    for composer in COMPOSERS:
        if composer not in plan.train:
            continue
        paths = [p for p, w, c in candidates if c == composer and w not in held_out]
        rng.shuffle(paths)
        count = plan.train[composer]
        chosen += [(p, "train") for p in paths[: len(paths) if count is None else count]]
    info = {path: (work, composer) for path, work, composer in candidates}
    pieces = [
        _draw_piece(ids[path], path, *info[path], split, seed, plan)
        for path, split in sorted(chosen, key=lambda c: ids[c[0]])
    ]
    for k in range(plan.textures):
        piece = _draw_piece(
            TEXTURE_FIRST_ID + k,
            f"textures/{k}",
            f"textures/{k}",
            "generated",
            "train",
            seed,
            dataclasses.replace(plan, max_seconds=plan.texture_seconds),
        )
        pieces.append(  # a texture is drawn with its own dynamics and pedal: no performance
            dataclasses.replace(
                piece,
                renderer="piano",
                soundfont=PIANO_NAME,
                texture_seed=seed * 1_000_000 + k,
                performance_seed=None,
                octaves=False,
            )
        )
    return pieces


def _draw_piece(piece_id, path, work, composer, split, seed, plan: SizePlan) -> Piece:
    # Seeded by the path too: a piece sounds the same whichever others are chosen.
    rng = random.Random(f"jaxnotes-piece:{seed}:{path}")
    soundfont = rng.choice(TRAIN_SOUNDFONTS)
    piece = Piece(
        piece_id=piece_id,
        path=path,
        work=work,
        composer=composer,
        split=split,
        soundfont=TEST_SOUNDFONT if split == "test" else soundfont,
        ensemble=rng.randrange(len(scores.ENSEMBLES)),
        tempo_scale=rng.uniform(0.85, 1.15),
        velocity_scale=rng.uniform(0.7, 1.15),
        legato=rng.uniform(0.85, 0.97),
        gain_db=rng.uniform(-9.0, -1.0),
        max_seconds=plan.max_seconds,
    )
    if split != "train":  # test audio is rendered as the default corpus renders it
        return piece
    # Drawn after the choices above, so sizes without them render the same pieces.
    if rng.random() < plan.piano_fraction:
        piece = dataclasses.replace(piece, renderer="piano", soundfont=PIANO_NAME)
    if rng.random() < plan.acoustics_fraction:
        piece = dataclasses.replace(piece, acoustics_seed=rng.randrange(2**31))
    if plan.performed and piece.renderer == "piano":
        piece = dataclasses.replace(
            piece, performance_seed=rng.randrange(2**31), octaves=plan.octaves
        )
    if plan.voicings:  # drawn for every train piece: textures become piano pieces later
        piece = dataclasses.replace(
            piece, voicing_seed=rng.randrange(2**31), voicing_kind=plan.voicings
        )
    if plan.take:  # the same pieces again, in other rooms, performances and pianos
        again = random.Random(f"jaxnotes-take:{plan.take}:{seed}:{path}")
        redrawn = {
            name: None if getattr(piece, name) is None else again.randrange(2**31)
            for name in ("acoustics_seed", "performance_seed", "voicing_seed")
        }
        piece = dataclasses.replace(piece, **redrawn)
    if plan.lifts:  # a stream of its own: the take's pieces are the same with or without
        lifts = random.Random(f"jaxnotes-lifts:{plan.take}:{seed}:{path}")
        piece = dataclasses.replace(piece, lift_seed=lifts.randrange(2**31))
    if plan.distances and piece.acoustics_seed is not None:
        piece = dataclasses.replace(piece, distant=True)
    return piece


def main(argv=None) -> None:
    """CLI: renders a corpus and prints where it is and what it holds."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=tuple(SIZES), default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        default="~/.cache/jaxnotes",
        help="cache folder (config.data.cache_dir): the corpus goes to OUT/corpus/<name>",
    )
    parser.add_argument(
        "--exclude", action="append", default=[], help="music21 path (prefix) kept out of train"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    config = types.SimpleNamespace(
        cache_dir=args.out,
        corpus_size=args.size,
        corpus_seed=args.seed,
        exclude_works=tuple(args.exclude),
    )
    try:
        root = ensure_corpus(config)
    except CorpusError as e:
        sys.exit(f"error: {e}")
    print(root)
    print(describe(read_summary(root)))


def describe(summary: dict) -> str:
    """One line on a corpus: pieces, hours of audio, render time and speed."""
    seconds, wall, cpu = summary["hours"] * 3600, summary["render_s"], summary["render_cpu_s"]
    return (
        f"pieces: {summary['pieces']['train']} train, {summary['pieces']['test']} test"
        f" ({len(summary['failed'])} failed to parse); {summary['hours']:.3f} h of audio;"
        f" rendered in {wall:.1f} s wall summed over pieces ({seconds / wall:.0f}x real time),"
        f" {cpu:.1f} s CPU ({seconds / cpu:.0f}x)"
    )
