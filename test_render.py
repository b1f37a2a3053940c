"""The synthetic i-CLEVR's domain randomisation: every make-iclevr look option changes the pictures
the way its name says, the default draws a different look per image across each whole range, the
same seed gives the same images for any worker count, and bad ranges are one clear line."""
import json
import os

import numpy as np
import pytest

from data import LOOK_RANGES, draw_look, make_iclevr, render_scene
from conftest import cli, run
from test_robustness import assert_one_line_error
from test_smoke import colors_in

FIXED = {key: (lo, lo) for key, (lo, hi) in LOOK_RANGES.items()}  # one look; tests change one knob at a time
FIXED.update(object_size=(0.8, 0.8), camera_elevation=(35.0, 35.0), camera_distance=(1.0, 1.0),
             light_azimuth=(-145.0, -145.0), light_elevation=(50.0, 50.0), light_strength=(1.0, 1.0))


def scene(names, seed, metal=0.0, **change):
    return np.asarray(render_scene(names, np.random.default_rng([seed, 1]), ranges={**FIXED, **change},
                                   metal_share=metal).convert("RGB")).astype(float)


def colored_pixels(img):
    """Pixels of saturated colour (objects, never the gray floor)."""
    top, bottom = img.max(-1), img.min(-1)
    return (top - bottom) > 0.35 * np.maximum(top, 1)


def test_object_size_shrinks_the_objects():
    names = ["red cube", "blue sphere", "green cylinder"]
    for seed in range(4):
        small = colored_pixels(scene(names, seed, object_size=(0.4, 0.4))).sum()
        large = colored_pixels(scene(names, seed, object_size=(1.1, 1.1))).sum()
        assert small < 0.3 * large, (seed, small, large)  # area goes with size squared: (0.4/1.1)^2 = 0.13


def test_camera_distance_shrinks_the_objects():
    for seed in range(3):
        far = colored_pixels(scene(["yellow sphere"], seed, camera_distance=(1.8, 1.8))).sum()
        near = colored_pixels(scene(["yellow sphere"], seed, camera_distance=(0.9, 0.9))).sum()
        assert far < 0.5 * near, (seed, far, near)


def test_camera_elevation_shows_more_of_the_top_and_less_of_the_side():
    from data import _geometry
    cylinder = {"u": 100.0, "v": 150.0, "size": 60.0, "shape": "cylinder", "metal": False}
    low, high = (_geometry(cylinder, draw_look(np.random.default_rng(0), {**FIXED, "camera_elevation": (e, e)}, 0))
                 for e in (20.0, 65.0))
    assert high["ry"] > 2 * low["ry"]  # the top cap, seen more from above
    assert high["bottom"] - high["top"] < 0.5 * (low["bottom"] - low["top"])  # the side, foreshortened


def test_light_strength_scales_floor_and_objects():
    dim, bright = (scene(["red sphere"], 0, light_strength=(s, s)) for s in (0.5, 1.5))
    corner = (slice(0, 20), slice(0, 20))  # empty floor
    assert bright[corner].mean() > 2.5 * dim[corner].mean()
    assert bright[colored_pixels(bright)].mean() > dim[colored_pixels(dim)].mean()


def test_shadow_falls_away_from_the_light():
    """Light from the left casts the shadow to the right of the object, and the other way round (the
    light is drawn before the layout, so both scenes hold the same sphere in the same place)."""
    from_left, from_right = (scene(["blue sphere"], 2, light_azimuth=(a, a), light_elevation=(25.0, 25.0))
                             for a in (-180.0, 0.0))
    object_x = np.nonzero(colored_pixels(from_left))[1].mean()
    shadow_right = (from_left.mean(-1) < from_right.mean(-1) - 25) & ~colored_pixels(from_left)
    shadow_left = (from_right.mean(-1) < from_left.mean(-1) - 25) & ~colored_pixels(from_right)
    assert shadow_right.sum() > 100 and shadow_left.sum() > 100
    assert np.nonzero(shadow_right)[1].mean() > object_x > np.nonzero(shadow_left)[1].mean()


def test_metal_is_darker_with_a_sharp_highlight():
    matte, metal = (scene(["red sphere"], 1, metal=m) for m in (0.0, 1.0))
    assert np.median(metal[colored_pixels(metal)][:, 0]) < np.median(matte[colored_pixels(matte)][:, 0])
    assert (metal.min(-1) > 160).sum() > (matte.min(-1) > 160).sum() + 20  # whitish highlight pixels


def test_the_default_draws_a_new_look_per_image_across_every_range():
    looks = [draw_look(np.random.default_rng([0, i]), LOOK_RANGES, 0.5) for i in range(200)]
    strengths = [look["strength"] for look in looks]
    elevations = [np.degrees(np.arcsin(look["sin"])) for look in looks]
    for values, (lo, hi) in ((strengths, LOOK_RANGES["light_strength"]), (elevations, LOOK_RANGES["camera_elevation"])):
        assert min(values) < lo + 0.1 * (hi - lo) and max(values) > hi - 0.1 * (hi - lo)
    for lo, hi in LOOK_RANGES.values():
        assert hi > lo  # every knob varies by default
    # every pair of default scenes of the same objects differs
    first, second = (np.asarray(render_scene(["gray cube"], np.random.default_rng([9, i]))) for i in (1, 2))
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("names", [["red cube"], ["blue sphere", "yellow cylinder"], ["green cube", "purple sphere", "cyan cylinder"]])
def test_every_colour_stays_readable_at_the_ends_of_the_ranges(names):
    """Each colour keeps its hue in the dimmest and brightest light (dark green under a weak lamp is
    as dark as CLEVR's, hence the lower value floor)."""
    for metal in (0.0, 1.0):
        for strength in (0.75, 1.25):
            found = colors_in(render_scene(names, np.random.default_rng([4, 2]), ranges={**LOOK_RANGES,
                              "light_strength": (strength, strength), "object_size": (0.55, 0.55)}, metal_share=metal),
                              min_value=0.12)
            assert found == {n.split()[0] for n in names}, (names, metal, strength, found)


def test_make_iclevr_same_seed_same_images_for_any_worker_count(tmp_path):
    flags = ["--n", 6, "--seed", 3, "--object-size", 0.5, 0.6, "--metal", 1]
    for workers, out in ((1, "one"), (2, "two")):
        assert cli("data.py", "make-iclevr", "--out", tmp_path / out, "--workers", workers, *flags).returncode == 0
    train = json.load(open(tmp_path / "one" / "train.json"))
    assert train == json.load(open(tmp_path / "two" / "train.json")) and len(train) == 6
    for name in train:
        a, b = ((tmp_path / d / "iclevr" / name).read_bytes() for d in ("one", "two"))
        assert a == b
    make_iclevr(str(tmp_path / "other"), 6, seed=4, workers=1, ranges={"object_size": (0.5, 0.6)}, metal_share=1.0)
    assert any((tmp_path / "one" / "iclevr" / n).read_bytes() != (tmp_path / "other" / "iclevr" / n).read_bytes()
               for n in train)


def test_make_iclevr_does_not_write_over_a_set_unless_asked(tmp_path):
    """A second make-iclevr into the same folder is refused; with --overwrite the new set replaces the old
    one entirely (a smaller set leaves none of the larger one's images behind)."""
    out = tmp_path / "set"
    assert cli("data.py", "make-iclevr", "--out", out, "--n", 5, "--workers", 1).returncode == 0
    kept = {p.name: p.read_bytes() for p in (out / "iclevr").iterdir()}
    (out / "notes.txt").write_text("the user's own file")
    assert_one_line_error(cli("data.py", "make-iclevr", "--out", out, "--n", 2, "--workers", 1),
                          "already holds an i-CLEVR (9 files); choose another --out, or replace it with --overwrite")
    assert {p.name: p.read_bytes() for p in (out / "iclevr").iterdir()} == kept
    assert cli("data.py", "make-iclevr", "--out", out, "--n", 2, "--seed", 1, "--workers", 1, "--overwrite").returncode == 0
    train = json.load(open(out / "train.json"))
    assert len(train) == 2 and sorted(p.name for p in (out / "iclevr").iterdir()) == sorted(train)
    assert (out / "notes.txt").read_text() == "the user's own file"


def test_the_ray_cast_set_is_loadable_shows_its_colours_and_is_the_same_per_seed(tmp_path):
    """docs/raycast_iclevr.py, the second renderer the default is checked on (never tuned on), writes the
    real layout the trainer loads, each scene showing its objects' colours; the same seed gives the same
    images for any worker count (two workers split four images), another seed other images."""
    from PIL import Image
    from data import load_iclevr
    for workers, out, seed in ((1, "one", 5), (2, "two", 5), (1, "other", 6)):
        run("docs/raycast_iclevr.py", "--out", tmp_path / out, "--n", 4, "--seed", seed, "--workers", workers)
    train = json.load(open(tmp_path / "one" / "train.json"))
    assert train == json.load(open(tmp_path / "two" / "train.json")) and len(train) == 4
    assert len({(tmp_path / "one" / "iclevr" / name).read_bytes() for name in train}) == 4  # a stream per image
    for name, objects in train.items():
        image_bytes = [(tmp_path / d / "iclevr" / name).read_bytes() for d in ("one", "two", "other")]
        assert image_bytes[0] == image_bytes[1] != image_bytes[2]
        img = Image.open(tmp_path / "one" / "iclevr" / name)
        assert img.size == (320, 240)
        assert colors_in(img, min_pixels=20) == {n.split()[0] for n in objects} - {"gray"}, (name, objects)
    images, conditions, _ = load_iclevr(str(tmp_path / "one"), img_size=32)
    assert images.shape == (4, 3, 32, 32) and conditions.sum(1).tolist() == [len(v) for v in train.values()]


@pytest.mark.parametrize("flags,phrase", [
    (["--object-size", 1.0, 0.5], "--object-size needs 0.3 <= LO <= HI <= 1.3 (got 1 0.5)"),
    (["--camera-elevation", 5, 30], "--camera-elevation needs 15 <= LO <= HI <= 70 (got 5 30)"),
    (["--light-strength", 0.5, 3], "--light-strength needs 0.4 <= LO <= HI <= 1.6 (got 0.5 3)"),
    (["--metal", 1.5], "--metal must be in [0, 1] (got 1.5)"),
])
def test_bad_look_ranges_are_one_clear_line(tmp_path, flags, phrase):
    proc = cli("data.py", "make-iclevr", "--out", tmp_path / "set", "--n", 2, *flags)
    assert_one_line_error(proc, phrase)
    assert not os.path.exists(tmp_path / "set")
