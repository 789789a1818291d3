#!/usr/bin/env python3
"""Generates a test corpus of REAL encoded audio files (ffmpeg) with tags written by mutagen.

Usage:
  scripts/gen_corpus.py --out DIR [--seed N] [--manifest FILE]
                                                  test corpus + manifest (default DIR/manifest.json)
  scripts/gen_corpus.py --out DIR --demo          a small, pleasant demo library
  scripts/gen_corpus.py --out DIR --large N [--wide M]
                                                  N tiny FLACs across many albums (benchmarks);
                                                  the first M (default 0) in one album folder
  scripts/gen_corpus.py --retag FILE key=value... rewrites tags in place (key= deletes a key)
  scripts/gen_corpus.py --read FILE               prints the file's tags as JSON (mutagen)

The test corpus has FLAC, MP3, Ogg Vorbis, Opus, M4A (AAC), WAV, AIFF and WavPack files with
unicode, missing fields, a multi-disc album, a compilation, embedded cover art, a title
collision, hostile tags (`../..`, `/etc/passwd`, NUL, 300-byte values, leading dots, `..`) and
malformed files (zero-byte, truncated, random bytes, text posing as audio, a non-audio file).

manifest.json: {"seed": n, "files": [{"path": relative path, "format": container, "ext": ...,
"kind": "audio" | "malformed" | "other", "tags": {canonical key: string}, "has_art": bool,
"hostile": bool, "collision": group name or null, "size": bytes, "sha256": hex}]}.
Canonical tag keys: title artist album albumartist track tracktotal disc disctotal year genre
compilation. Output is deterministic for a given seed (ffmpeg runs with bitexact flags).
"""

import argparse
import base64
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

try:
    import mutagen
    from mutagen.apev2 import APEv2
    from mutagen.flac import FLAC, Picture
    from mutagen.id3 import APIC, ID3, TALB, TCMP, TCON, TDRC, TIT2, TPE1, TPE2, TPOS, TRCK
    from mutagen.mp4 import MP4, MP4Cover
    from mutagen.oggopus import OggOpus
    from mutagen.oggvorbis import OggVorbis
except ImportError:  # pragma: no cover - a clear message beats a traceback
    sys.exit("gen_corpus.py: needs mutagen (run scripts/setup.sh, or: python3 -m pip install mutagen)")

BITEXACT = ["-fflags", "+bitexact", "-flags:a", "+bitexact", "-map_metadata", "-1"]

# format name -> (extension, ffmpeg codec arguments)
FORMATS = {
    "flac": ("flac", ["-c:a", "flac"]),
    "mp3": ("mp3", ["-c:a", "libmp3lame", "-b:a", "64k", "-id3v2_version", "0", "-write_xing", "0"]),
    "ogg": ("ogg", ["-c:a", "libvorbis", "-q:a", "0"]),
    "opus": ("opus", ["-c:a", "libopus", "-b:a", "32k"]),
    "m4a": ("m4a", ["-c:a", "aac", "-b:a", "64k"]),
    "wav": ("wav", ["-c:a", "pcm_s16le"]),
    "aiff": ("aiff", ["-c:a", "pcm_s16be"]),
    "wv": ("wv", ["-c:a", "wavpack"]),
}


def run(cmd):
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if res.returncode != 0:
        sys.exit("gen_corpus.py: command failed: %s\n%s" % (" ".join(cmd), res.stderr.decode(errors="replace")))


def encode(path, fmt, freq, seconds):
    """Encodes a sine tone; Opus wants 48 kHz, the rest are small at 22.05 kHz mono."""
    rate = "48000" if fmt == "opus" else "22050"
    _, codec = FORMATS[fmt]
    run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi",
         "-i", "sine=frequency=%d:duration=%s:sample_rate=%s" % (freq, seconds, rate),
         "-ac", "1", "-ar", rate] + codec + BITEXACT + [path])


def make_cover(path, color):
    run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi",
         "-i", "color=c=%s:s=64x64:d=1" % color, "-frames:v", "1", "-c:v", "mjpeg",
         "-fflags", "+bitexact", "-flags:v", "+bitexact", "-f", "image2", path])


# --- tag writing ---------------------------------------------------------------------------

VORBIS_KEYS = {"track": "TRACKNUMBER", "tracktotal": "TRACKTOTAL", "disc": "DISCNUMBER",
               "disctotal": "DISCTOTAL", "year": "DATE", "albumartist": "ALBUMARTIST"}
ID3_FRAMES = {"TIT2": "title", "TPE1": "artist", "TALB": "album", "TPE2": "albumartist", "TDRC": "year",
              "TCON": "genre", "TCMP": "compilation", "TRCK": "track", "TPOS": "disc"}
MP4_ATOMS = {"\xa9nam": "title", "\xa9ART": "artist", "\xa9alb": "album", "aART": "albumartist",
             "\xa9day": "year", "\xa9gen": "genre", "trkn": "track", "disk": "disc", "cpil": "compilation"}
APE_NAMES = {"title": "title", "artist": "artist", "album": "album", "album artist": "albumartist",
             "year": "year", "genre": "genre", "compilation": "compilation", "track": "track", "disc": "disc"}


def _pair(num, total):
    if num is None:
        return None
    return "%s/%s" % (num, total) if total else str(num)


def write_tags(path, fmt, tags, art=None):
    """Writes canonical tags (and optional JPEG bytes as front cover) in the format's native way."""
    t = {k: v for k, v in tags.items() if v is not None}
    if fmt in ("flac", "ogg", "opus"):
        f = {"flac": FLAC, "ogg": OggVorbis, "opus": OggOpus}[fmt](path)
        if f.tags is None:
            f.add_tags()
        f.tags.clear()
        for key, value in t.items():
            f.tags[VORBIS_KEYS.get(key, key.upper())] = [value]
        if art is not None:
            pic = Picture()
            pic.type, pic.mime, pic.desc, pic.data = 3, "image/jpeg", "cover", art
            pic.width = pic.height = 64
            pic.depth = 24
            if fmt == "flac":
                f.clear_pictures()
                f.add_picture(pic)
            else:
                f.tags["METADATA_BLOCK_PICTURE"] = [base64.b64encode(pic.write()).decode("ascii")]
        f.save()
    elif fmt in ("mp3", "wav", "aiff"):
        if fmt == "mp3":
            id3 = ID3()
        else:
            f = mutagen.File(path)
            if f.tags is None:
                f.add_tags()
            id3 = f.tags
            id3.clear()
        frames = {"title": TIT2, "artist": TPE1, "album": TALB, "albumartist": TPE2,
                  "year": TDRC, "genre": TCON, "compilation": TCMP}
        for key, cls in frames.items():
            if key in t:
                id3.add(cls(encoding=3, text=[t[key]]))
        if "track" in t:
            id3.add(TRCK(encoding=3, text=[_pair(t["track"], t.get("tracktotal"))]))
        if "disc" in t:
            id3.add(TPOS(encoding=3, text=[_pair(t["disc"], t.get("disctotal"))]))
        if art is not None:
            id3.add(APIC(encoding=3, mime="image/jpeg", type=3, desc="cover", data=art))
        if fmt == "mp3":
            id3.save(path, v2_version=4)
        else:
            f.save()
    elif fmt == "m4a":
        f = MP4(path)
        if f.tags is None:
            f.add_tags()
        f.tags.clear()
        atoms = {"title": "\xa9nam", "artist": "\xa9ART", "album": "\xa9alb", "albumartist": "aART",
                 "year": "\xa9day", "genre": "\xa9gen"}
        for key, atom in atoms.items():
            if key in t:
                f.tags[atom] = [t[key]]
        if "track" in t:
            f.tags["trkn"] = [(int(t["track"]), int(t.get("tracktotal", 0)))]
        if "disc" in t:
            f.tags["disk"] = [(int(t["disc"]), int(t.get("disctotal", 0)))]
        if t.get("compilation") == "1":
            f.tags["cpil"] = True
        if art is not None:
            f.tags["covr"] = [MP4Cover(art, imageformat=MP4Cover.FORMAT_JPEG)]
        f.save()
    elif fmt == "wv":
        ape = APEv2()
        names = {"title": "Title", "artist": "Artist", "album": "Album", "albumartist": "Album Artist",
                 "year": "Year", "genre": "Genre", "compilation": "Compilation"}
        for key, name in names.items():
            if key in t:
                ape[name] = t[key]
        if "track" in t:
            ape["Track"] = _pair(t["track"], t.get("tracktotal"))
        if "disc" in t:
            ape["Disc"] = _pair(t["disc"], t.get("disctotal"))
        if art is not None:
            ape["Cover Art (Front)"] = mutagen.apev2.APEValue(b"cover.jpg\x00" + art, mutagen.apev2.BINARY)
        ape.save(path)
    else:
        raise ValueError(fmt)


def read_tags(path):
    """Canonical tags as mutagen reads them (the independent reader the tests compare with)."""
    f = mutagen.File(path)
    if f is None:
        raise SystemExit("gen_corpus.py: not an audio file: %s" % path)
    out = {}
    tags = f.tags
    if tags is None:
        return out
    if isinstance(tags, ID3):
        for frame_id, key in ID3_FRAMES.items():
            frame = tags.get(frame_id)
            if frame is not None and frame.text:
                out[key] = str(frame.text[0])
    elif isinstance(f, MP4):
        for atom, key in MP4_ATOMS.items():
            if atom in tags:
                value = tags[atom]
                value = value[0] if isinstance(value, list) else value
                if isinstance(value, tuple):
                    value = "%d/%d" % value if value[1] else str(value[0])
                elif isinstance(value, bool):
                    value = "1" if value else "0"
                out[key] = str(value)
    elif isinstance(tags, APEv2):
        for name, value in tags.items():
            key = APE_NAMES.get(name.lower())
            if key is not None:
                out[key] = str(value)
    else:  # Vorbis comments (FLAC, Ogg Vorbis, Opus)
        back = {v: k for k, v in VORBIS_KEYS.items()}
        for name, value in tags.items():
            name = name.upper()
            if name == "METADATA_BLOCK_PICTURE":
                continue
            out[back.get(name, name.lower())] = value[0] if isinstance(value, list) else value
    for k in ("track", "disc"):
        if k in out and "/" in out[k]:
            out[k], total = out[k].split("/", 1)
            out[k + "total"] = total
    return out


# --- the test corpus -------------------------------------------------------------------------

def file_entry(root, rel, fmt, kind, tags, has_art=False, hostile=False, collision=None):
    path = os.path.join(root, rel)
    with open(path, "rb") as fh:
        data = fh.read()
    return {"path": rel, "format": fmt, "ext": rel.rsplit(".", 1)[-1] if "." in rel else "",
            "kind": kind, "tags": {k: v for k, v in tags.items() if v is not None},
            "has_art": has_art, "hostile": hostile, "collision": collision,
            "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def album(artist, name, year, genre, titles, albumartist=None, disc=None, disctotal=None, compilation=False,
          artists=None):
    tracks = []
    for i, title in enumerate(titles, 1):
        tracks.append({"title": title, "artist": (artists[i - 1] if artists else artist), "album": name,
                       "albumartist": albumartist, "track": str(i), "tracktotal": str(len(titles)),
                       "disc": str(disc) if disc else None, "disctotal": str(disctotal) if disctotal else None,
                       "year": str(year), "genre": genre, "compilation": "1" if compilation else None})
    return tracks


def gen_test_corpus(out, seed):
    rng = random.Random(seed)
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="gen_corpus.")
    try:
        cover_path = os.path.join(work, "cover.jpg")
        make_cover(cover_path, "0x%06x" % rng.randrange(1 << 24))
        with open(cover_path, "rb") as fh:
            art = fh.read()
        # (origin path, format, tags, art, hostile, collision)
        plan = []

        def add(rel, fmt, tags, with_art=False, hostile=False, collision=None):
            plan.append((rel, fmt, tags, art if with_art else None, hostile, collision))

        for i, (fmt, t) in enumerate(zip(["flac", "mp3", "ogg"],
                                         album("Björk", "Homogenic", 1997, "Electronic",
                                               ["Hunter", "Jóga", "Bachelorette"], albumartist="Björk"))):
            add("Bjork/Homogenic/%02d.%s" % (i + 1, FORMATS[fmt][0]), fmt, t, with_art=True)
        for i, (fmt, t) in enumerate(zip(["opus", "m4a", "wav", "aiff", "wv"],
                                         album("坂本龍一", "戦場のメリークリスマス", 1983, "Soundtrack",
                                               ["メリー・クリスマス", "The Seed and the Sower", "A Hunter",
                                                "Ride Ride Ride", "Germination"]))):
            add("sakamoto/track%d.%s" % (i + 1, FORMATS[fmt][0]), fmt, t, with_art=(fmt == "m4a"))
        # a two-disc album, files flat in one folder
        for disc in (1, 2):
            for i, t in enumerate(album("Motörhead", "No Sleep at All", 1988, "Metal",
                                        ["Doctor Rock", "Stay Clean"] if disc == 1 else ["Traitor", "Metropolis"],
                                        albumartist="Motörhead", disc=disc, disctotal=2)):
                fmt = "flac" if i == 0 else "mp3"
                add("incoming/motorhead-d%d-t%d.%s" % (disc, i + 1, fmt), fmt, t)
        # a compilation
        va = album(None, "Summer Mix", 2001, "Pop", ["Sunrise", "Waves", "Dusk"],
                   albumartist="Various Artists", compilation=True,
                   artists=["Alpha Band", "Beta Singer", "Gamma Trio"])
        for i, (fmt, t) in enumerate(zip(["flac", "m4a", "mp3"], va)):
            add("compilations/Summer Mix/%02d %s.%s" % (i + 1, t["artist"], FORMATS[fmt][0]), fmt, t)
        # missing fields
        base = {"artist": "Plain Artist", "album": "Plain Album", "year": "2010", "genre": "Rock"}
        add("misc/no_album.flac", "flac", {**base, "album": None, "title": "Lonely Song", "track": "1"})
        add("misc/no_albumartist.mp3", "mp3", {**base, "title": "Second Song", "track": "2"})
        add("misc/untitled_take.flac", "flac", {**base, "track": "3"})
        add("misc/no_track.ogg", "ogg", {**base, "title": "Trackless"})
        # two files that render to the same path (same album, track and title)
        for n in (1, 2):
            add("collide/copy%d.flac" % n, "flac",
                {"artist": "Echo", "albumartist": "Echo", "album": "Twice", "title": "Same Song",
                 "track": "1", "year": "2020", "genre": "Pop"}, collision="echo-twice")
        # hostile tags
        add("hostile/dotdot.flac", "flac", {"artist": "../..", "albumartist": "../..", "album": "..",
                                             "title": "/etc/passwd", "track": "1"}, hostile=True)
        add("hostile/nul.flac", "flac", {"artist": "Nul\x00Artist", "album": "Al\x00bum",
                                          "title": "Ti\x00tle", "track": "2"}, hostile=True)
        add("hostile/long.mp3", "mp3", {"artist": "L" * 300, "album": "Ä" * 150,
                                         "title": "x" * 300, "track": "3"}, hostile=True)
        add("hostile/dots.ogg", "ogg", {"artist": ".hidden", "album": "...",
                                         "title": ".", "track": "4"}, hostile=True)
        add("hostile/slashes.m4a", "m4a", {"artist": "AC/DC", "albumartist": "/", "album": "/etc",
                                            "title": "../../../../tmp/escape", "track": "5"}, hostile=True)

        entries = []
        for idx, (rel, fmt, tags, art_bytes, hostile, collision) in enumerate(plan):
            path = os.path.join(out, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            encode(path, fmt, 220 + rng.randrange(880), rng.choice(["1", "1.5", "2"]))
            write_tags(path, fmt, tags, art_bytes)
            entries.append(file_entry(out, rel, fmt, "audio", tags, has_art=art_bytes is not None,
                                      hostile=hostile, collision=collision))

        # malformed files and a non-audio file
        bad = os.path.join(out, "broken")
        os.makedirs(bad, exist_ok=True)
        open(os.path.join(bad, "empty.mp3"), "wb").close()
        src = os.path.join(out, plan[0][0])  # a FLAC with a picture block: cut inside the metadata
        with open(src, "rb") as fh:
            head = fh.read(60)
        with open(os.path.join(bad, "truncated.flac"), "wb") as fh:
            fh.write(head)
        with open(os.path.join(bad, "noise.ogg"), "wb") as fh:
            fh.write(bytes(rng.randrange(256) for _ in range(4096)))
        with open(os.path.join(bad, "text.m4a"), "w") as fh:
            fh.write("this is not an MPEG-4 file\n" * 20)
        for name in ("empty.mp3", "truncated.flac", "noise.ogg", "text.m4a"):
            entries.append(file_entry(out, "broken/" + name, name.rsplit(".", 1)[1], "malformed", {}))
        with open(os.path.join(out, "notes.txt"), "w") as fh:
            fh.write("Liner notes: not audio.\n")
        entries.append(file_entry(out, "notes.txt", "txt", "other", {}))
        # Album sidecars: skipped by the scanner, neither tracks nor scan errors.
        # Not in the manifest (they are not files the tests compare).
        shutil.copyfile(cover_path, os.path.join(out, "Bjork", "Homogenic", "cover.jpg"))
        with open(os.path.join(out, "Bjork", "Homogenic", "rip.log"), "w") as fh:
            fh.write("Exact Audio Copy V1.6 extraction logfile\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_manifest(out, {"seed": seed, "files": entries})
    return entries


MANIFEST = None  # --manifest; default OUT/manifest.json


def write_manifest(out, manifest):
    with open(MANIFEST or os.path.join(out, "manifest.json"), "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, ensure_ascii=False, indent=1)


# --- the demo library ------------------------------------------------------------------------

def gen_demo(out, seed):
    """A small library in a messy origin layout, so the tag-organised mount shows its worth."""
    rng = random.Random(seed)
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="gen_demo.")
    try:
        covers = {}
        for name, color in (("a", "steelblue"), ("b", "darkorange"), ("c", "seagreen"), ("d", "purple")):
            p = os.path.join(work, name + ".jpg")
            make_cover(p, color)
            with open(p, "rb") as fh:
                covers[name] = fh.read()
        plan = []
        plan += [("Downloads/aurora_%d.flac" % i, "flac", t, covers["a"]) for i, t in enumerate(album(
            "The Aurora Quartet", "Northern Lights", 2019, "Classical",
            ["Prelude", "Polar Night", "Solar Wind", "Coda"], albumartist="The Aurora Quartet"), 1)]
        plan += [("rips/cd%d/%02d.mp3" % (d, i), "mp3", t, covers["b"]) for d, ts in ((1, album(
            "Café Tacvba", "Ciudad de Papel", 2004, "Rock", ["Intro", "Papel", "Tinta"],
            albumartist="Café Tacvba", disc=1, disctotal=2)), (2, album(
            "Café Tacvba", "Ciudad de Papel", 2004, "Rock", ["Lluvia", "Final"],
            albumartist="Café Tacvba", disc=2, disctotal=2))) for i, t in enumerate(ts, 1)]
        plan += [("misc/%s.%s" % (t["title"].lower().replace(" ", "_"), ext), fmt, t, covers["c"])
                 for (fmt, ext), t in zip((("ogg", "ogg"), ("opus", "opus"), ("m4a", "m4a")), album(
                     None, "Late Night Radio", 2022, "Jazz", ["Blue Hour", "Neon Rain", "Last Call"],
                     albumartist="Various Artists", compilation=True,
                     artists=["Mira Sol", "Kenji Watanabe", "Åsa Lind"]))]
        plan += [("new/%d.flac" % i, "flac", t, covers["d"]) for i, t in enumerate(album(
            "Sigur Ljós", "Ágætis byrjun", 2011, "Ambient", ["Svefn", "Ný batterí"],
            albumartist="Sigur Ljós"), 1)]
        entries = []
        for rel, fmt, tags, art in plan:
            path = os.path.join(out, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            encode(path, fmt, 220 + rng.randrange(660), "3")
            write_tags(path, fmt, tags, art)
            entries.append(file_entry(out, rel, fmt, "audio", tags, has_art=True))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_manifest(out, {"seed": seed, "files": entries})
    return entries


# --- the large library (benchmarks) ------------------------------------------------------------
#
# Mutagen costs milliseconds per file; 100k files would take minutes. Instead one tiny FLAC is
# encoded once and each copy is assembled in Python: "fLaC", its STREAMINFO, a VORBIS_COMMENT
# block built here, the audio frames. That is a valid FLAC (lofty and ffprobe read it).

def flac_parts(path):
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:4] != b"fLaC":
        raise SystemExit("gen_corpus.py: ffmpeg did not write a FLAC file")
    pos, streaminfo = 4, None
    while True:
        header = data[pos]
        length = struct.unpack(">I", b"\x00" + data[pos + 1:pos + 4])[0]
        if header & 0x7F == 0:
            streaminfo = data[pos + 4:pos + 4 + length]
        pos += 4 + length
        if header & 0x80:
            break
    return streaminfo, data[pos:]


def vorbis_block(tags, last):
    vendor = b"musicfs gen_corpus"
    body = struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", len(tags))
    for key, value in tags:
        kv = ("%s=%s" % (key, value)).encode("utf-8")
        body += struct.pack("<I", len(kv)) + kv
    return bytes([(0x80 if last else 0) | 4]) + struct.pack(">I", len(body))[1:] + body


def gen_large(out, count, wide, seed):
    rng = random.Random(seed)
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="gen_large.")
    try:
        tiny = os.path.join(work, "tiny.flac")
        run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi",
             "-i", "anullsrc=r=8000:cl=mono", "-t", "0.1", "-c:a", "flac"] + BITEXACT + [tiny])
        streaminfo, frames = flac_parts(tiny)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    head = b"fLaC" + bytes([0]) + struct.pack(">I", len(streaminfo))[1:] + streaminfo
    per_album, albums_per_artist = 10, 10
    made_dirs = set()
    genres = ["Rock", "Jazz", "Pop", "Ambient", "Folk", "Classical"]
    for i in range(count):
        if i < wide:
            artist, album_name, track = "Wide Artist", "Wide Album", i + 1
            rel_dir = "wide"
        else:
            j = i - wide
            a, rest = divmod(j, per_album * albums_per_artist)
            b, t = divmod(rest, per_album)
            artist, album_name, track = "Artist %05d" % a, "Album %05d-%02d" % (a, b), t + 1
            rel_dir = "a%05d/b%02d" % (a, b)
        tags = [("TITLE", "Track %d of %s" % (track, album_name)), ("ARTIST", artist),
                ("ALBUMARTIST", artist), ("ALBUM", album_name), ("TRACKNUMBER", str(track)),
                ("DATE", str(1960 + (i // 100) % 60)), ("GENRE", genres[(i // 100) % len(genres)])]
        d = os.path.join(out, rel_dir)
        if d not in made_dirs:
            os.makedirs(d, exist_ok=True)
            made_dirs.add(d)
        with open(os.path.join(d, "%05d.flac" % track), "wb") as fh:
            fh.write(head + vorbis_block(tags, True) + frames)
        if count >= 10000 and (i + 1) % 10000 == 0:
            print("gen_corpus.py: %d/%d files" % (i + 1, count), file=sys.stderr)
    rng.random()  # the layout is fixed; the seed is accepted for a uniform interface
    write_manifest(out, {"seed": seed, "large": count, "wide": wide})


# --- command line ----------------------------------------------------------------------------

def retag(path, assignments):
    """Rewrites the given canonical tags of a FLAC/Ogg/Opus/MP3/M4A file in place."""
    f = mutagen.File(path, easy=True)
    if f is None:
        sys.exit("gen_corpus.py: not an audio file: %s" % path)
    if f.tags is None:
        f.add_tags()
    easy = {"track": "tracknumber", "disc": "discnumber", "year": "date"}
    for a in assignments:
        key, _, value = a.partition("=")
        key = easy.get(key, key)
        if value:
            f.tags[key] = [value]
        elif key in f.tags:
            del f.tags[key]
    f.save()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out")
    p.add_argument("--manifest", help="where to write manifest.json (default OUT/manifest.json)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--demo", action="store_true")
    p.add_argument("--large", type=int, default=0)
    p.add_argument("--wide", type=int, default=0)
    p.add_argument("--retag")
    p.add_argument("--read")
    p.add_argument("assignments", nargs="*")
    args = p.parse_args()
    if args.read:
        print(json.dumps(read_tags(args.read), ensure_ascii=False))
        return
    if args.retag:
        retag(args.retag, args.assignments)
        return
    if not args.out:
        p.error("--out DIR is required")
    global MANIFEST
    MANIFEST = args.manifest
    if args.large:
        gen_large(args.out, args.large, min(args.wide, args.large), args.seed)
    elif args.demo:
        gen_demo(args.out, args.seed)
    else:
        gen_test_corpus(args.out, args.seed)


if __name__ == "__main__":
    main()
