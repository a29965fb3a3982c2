"""``omnicurate corpus synth``: write a small media corpus with known ground truth."""

from __future__ import annotations

import argparse

from flows.commands import command_help


def register(sub: argparse._SubParsersAction) -> None:
    corpus = sub.add_parser("corpus", help="make a small synthetic media corpus with known ground truth",
                            **command_help("Make media to try omnicurate on (or to test it with).",
                                           "omnicurate corpus synth corpus/ --seed 0"))
    actions = corpus.add_subparsers(dest="corpus_command", required=True, metavar="ACTION")
    synth = actions.add_parser(
        "synth", help="narrated shape videos, speech clips and images, plus facts.jsonl",
        **command_help("Write narrated videos of coloured shapes, spoken clips and still images into OUT, with\n"
                       "facts.jsonl saying what each one shows and says, so a curated dataset can be checked\n"
                       "against the truth. The same seed writes the same bytes.",
                       "omnicurate corpus synth corpus/ --seed 0",
                       "omnicurate corpus synth corpus/ --videos 20 --audio 10 --images 20 --tts espeak-ng"))
    synth.add_argument("out", help="directory to write the corpus into")
    synth.add_argument("--seed", type=int, default=0, help="the same seed writes the same bytes")
    synth.add_argument("--videos", type=int, default=6, help="narrated H.264+AAC videos")
    synth.add_argument("--audio", type=int, default=4, help="standalone speech clips (wav, flac)")
    synth.add_argument("--images", type=int, default=6, help="still images (jpg, png)")
    synth.add_argument("--tts", choices=("piper", "espeak-ng"), default="piper",
                       help="speech synthesiser (piper falls back to espeak-ng when it cannot load)")
    synth.set_defaults(run=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from curators.corpus_synth import FACTS_FILE, synth_corpus

    for name in ("videos", "audio", "images"):
        if getattr(args, name) < 0:
            raise SystemExit(f"omnicurate corpus synth: --{name} must not be negative")
    facts = synth_corpus(args.out, args.seed, videos=args.videos, audio=args.audio, images=args.images,
                         tts="piper" if args.tts == "piper" else "espeak-ng")
    kinds = {kind: sum(1 for f in facts if f["kind"] == kind) for kind in ("video", "audio", "image")}
    print(f"wrote {len(facts)} files to {args.out} ({kinds['video']} videos, {kinds['audio']} audio, "
          f"{kinds['image']} images); ground truth in {args.out}/{FACTS_FILE}")
    return 0
