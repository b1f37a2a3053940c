"""Datasets: MNIST (for InfoGAN) and i-CLEVR (for the conditional GAN), plus a synthetic i-CLEVR.

Both datasets are loaded once into memory as uint8 tensors; the trainers batch from them by
indexing, so there is no per-image PIL work in the training loop.

    python data.py make-iclevr --out data/iclevr-synth --n 18009 --seed 0      # a new look per image
    python data.py make-iclevr --out small --object-size 0.6 0.8 --metal 0     # smaller matte objects
"""
import glob
import json
import os
import shutil
from functools import lru_cache
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter

from training import UserError, check

SPEC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "iclevr")  # objects/test/new_test.json
SPEC_FILES = ("test.json", "new_test.json")  # the conditions a generator is judged on, copied into every made set
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def load_mnist(root, train=True, img_size=28, download=True):
    """MNIST split as (uint8 images (N, 1, img_size, img_size), int64 labels (N,)).

    Uses torchvision's MNIST (its raw IDX files in ROOT/MNIST/raw), downloading when missing."""
    from torchvision.datasets import MNIST
    raw = os.path.join(root, "MNIST", "raw")
    if os.path.exists(root):
        check(os.path.isdir(root) and os.access(root, os.R_OK | os.X_OK), f"dataset folder {root} is not a readable folder")
    made = [d for d in (root, os.path.join(root, "MNIST"), raw) if not os.path.exists(d)]
    try:
        ds = MNIST(root, train=train, download=download)
    except Exception as e:  # no network, a mirror down, a read-only folder...
        for d in reversed(made):  # a mistyped --data-root leaves no empty folders behind
            if os.path.isdir(d) and not os.listdir(d):
                os.rmdir(d)
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        reason = lines[-1][:120] if lines else type(e).__name__  # torchvision's last line is the cause
        raise UserError(f"MNIST not found in {raw} and the download failed ({reason}); put the four IDX files "
                        f"({', '.join(MNIST_FILES)}) there, or pass --data-root to a folder that has MNIST/raw/") from None
    images = ds.data.unsqueeze(1)  # uint8 (N, 1, 28, 28)
    if img_size != 28:
        # resized once here rather than per batch; kept uint8 to stay small in memory
        images = F.interpolate(images.float(), size=(img_size, img_size), mode="bilinear", align_corners=False)
        images = images.round().clamp(0, 255).to(torch.uint8)
    return images, ds.targets.clone()


def to_float(images_uint8):
    """uint8 [0, 255] -> float [-1, 1], the range of the generators' tanh."""
    return images_uint8.float().div_(127.5).sub_(1.0)


def flip_and_shift(x, max_shift=4):
    """Each scene mirrored left-right half the time and moved by up to max_shift pixels each way
    (edges repeated): the same objects, so the same label. Differentiable, so a GAN's D can see
    G's images moved the same way (DiffAugment, Zhao et al. 2020)."""
    n, size = len(x), x.shape[-1]
    flip = torch.rand(n, device=x.device) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    padded = F.pad(x, [max_shift] * 4, mode="replicate")
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2, n, 1), device=x.device)
    span = torch.arange(size, device=x.device)
    rows, cols = (dy + span)[:, :, None], (dx + span)[:, None, :]
    return padded.permute(0, 2, 3, 1)[torch.arange(n, device=x.device)[:, None, None], rows, cols].permute(0, 3, 1, 2)


# ----------------------------------------------------------------------------------------
# i-CLEVR: the real layout
#   DIR/train.json      {"CLEVR_train_001032_2.png": ["red cube", ...], ...}
#   DIR/objects.json    {"gray cube": 0, ..., "yellow cylinder": 23}
#   DIR/test.json, DIR/new_test.json   [["gray cube"], ["red cube", "blue sphere"], ...]
#   DIR/iclevr/*.png    (DIR/images/ accepted too), RGBA 320x240
# ----------------------------------------------------------------------------------------

def read_json(path, what):
    check(os.path.isfile(path), f"{what} not found: {path}")
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e})") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None


def load_objects(root):
    objects = read_json(os.path.join(root, "objects.json"), "objects.json")
    check(isinstance(objects, dict) and sorted(objects.values()) == list(range(len(objects))),
          f"{os.path.join(root, 'objects.json')} must map object names to indices 0..N-1")
    return objects


def to_multi_hot(names_list, objects, source):
    """[["red cube", "blue sphere"], ...] -> float (N, 24) multi-hot; unknown names are an error."""
    y = torch.zeros(len(names_list), len(objects))
    for i, names in enumerate(names_list):
        check(isinstance(names, list) and names, f"{source}: entry {i} must be a non-empty list of object names")
        for name in names:
            if name not in objects:
                raise UserError(f"{source}: unknown object {name!r}; valid names: {', '.join(objects)}")
            y[i, objects[name]] = 1
    return y


def load_conditions(path, objects):
    """A test.json-style file -> multi-hot (N, 24)."""
    data = read_json(path, "condition file")
    check(isinstance(data, list) and data, f"{path} must be a JSON list of lists of object names")
    return to_multi_hot(data, objects, path)


def iclevr_image_dir(root):
    """The image folder of an i-CLEVR at root, after checking that root looks like one; cheap, so a
    trainer calls it before it makes a run folder for data it cannot read."""
    make_one = f"make a synthetic one with: python data.py make-iclevr --out {root}"
    check(os.path.isdir(root), f"i-CLEVR folder not found: {root} ({make_one})")
    check(any(os.path.isfile(os.path.join(root, f)) for f in ("objects.json", "train.json")),
          f"{root} holds no i-CLEVR (no objects.json or train.json; {make_one})")
    image_dir = next((d for d in (os.path.join(root, "iclevr"), os.path.join(root, "images")) if os.path.isdir(d)), None)
    check(image_dir is not None, f"no image folder in {root}: expected {root}/iclevr/ or {root}/images/")
    return image_dir


def load_iclevr(root, img_size=64):
    """The training set as (uint8 images (N, 3, S, S), multi-hot conditions (N, 24), objects)."""
    image_dir = iclevr_image_dir(root)
    objects = load_objects(root)
    train = read_json(os.path.join(root, "train.json"), "train.json")
    check(isinstance(train, dict) and train, f"{os.path.join(root, 'train.json')} must map image filenames to object lists")
    files = list(train)
    conditions = to_multi_hot([train[f] for f in files], objects, os.path.join(root, "train.json"))
    images = torch.empty(len(files), 3, img_size, img_size, dtype=torch.uint8)
    from tqdm import tqdm
    for i, name in enumerate(tqdm(files, desc=f"loading i-CLEVR at {img_size}px", disable=None, leave=False)):
        path = os.path.join(image_dir, name)
        check(os.path.isfile(path), f"image listed in train.json is missing: {path}")
        try:
            with Image.open(path) as img:
                img = img.convert("RGB").resize((img_size, img_size), Image.BILINEAR)
        except OSError as e:
            raise UserError(f"cannot read image {path}: {e}") from None
        images[i] = torch.from_numpy(np.array(img)).permute(2, 0, 1)
    return images, conditions, objects


def iclevr_files(root):
    """The files a cache of the training set depends on: objects.json, train.json and every image it lists."""
    files = [os.path.join(root, "objects.json"), os.path.join(root, "train.json")]
    try:
        with open(files[1]) as f:
            names = list(json.load(f))
        image_dir = next(d for d in (os.path.join(root, "iclevr"), os.path.join(root, "images")) if os.path.isdir(d))
        return files + [os.path.join(image_dir, n) for n in names]
    except (OSError, ValueError, StopIteration, TypeError):
        return None  # load_iclevr says what is wrong


def load_iclevr_cached(root, img_size=64, cache_dir=None):
    """load_iclevr, cached as one tensor file in the user's cache folder (decoding 18k PNGs takes a
    while); the cache records the files it was made from and is rebuilt when any of them changes."""
    from training import cached, fingerprint, folder_key, user_cache_dir
    files = iclevr_files(root)
    if files is None or not all(os.path.isfile(f) for f in files):
        return load_iclevr(root, img_size)
    digest = fingerprint(files, "iclevr", img_size)
    data = cached(user_cache_dir(cache_dir), f"iclevr_{folder_key(root)}_{img_size}px.pt", digest,
                  lambda: dict(zip(("images", "conditions", "objects"), load_iclevr(root, img_size))), "i-CLEVR cache")
    return data["images"], data["conditions"], data["objects"]


def mnist_fingerprint(root):
    """What the digit classifier is trained from: the MNIST training files (torchvision's layout)."""
    from training import fingerprint
    raw = os.path.join(root, "MNIST", "raw")
    return fingerprint([os.path.join(raw, f) for f in MNIST_FILES[:2] if os.path.isfile(os.path.join(raw, f))], "mnist")


# ----------------------------------------------------------------------------------------
# A synthetic i-CLEVR: CLEVR-like scenes drawn procedurally with Pillow and numpy
# (gray floor, soft light, shaded cubes, spheres and cylinders with soft shadows)
# ----------------------------------------------------------------------------------------

COLORS = {
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}
SHAPES = ("cube", "sphere", "cylinder")
OBJECT_NAMES = [f"{color} {shape}" for shape in SHAPES for color in COLORS]

_SS = 2  # supersampling factor: draw big, shrink with LANCZOS for anti-aliasing
_AMBIENT, _DIFFUSE = 0.58, 0.5  # a high ambient term keeps dark colours apart
_HIDE_MAX = 0.3  # max occluded share of an object's bounding box

# Domain randomisation: what real CLEVR scenes vary, each drawn per image (per object for the size)
# uniformly from (low, high); low == high fixes it. The defaults span a wide range of looks, so a
# model tuned here is not tuned to one camera and one lamp. The smallest default object is 5.6-6.7 px
# wide at 64 px; its judge reads 0.98 of held-out images, and 0.95 on set E, drawn with --object-size 0.6 0.8
# and narrower camera and light ranges (docs/results.md).
LOOK_RANGES = {
    "object_size": (0.9, 1.2),         # x the base size (58-88 px at the front of a 320x240 scene)
    "camera_elevation": (25.0, 50.0),  # degrees the camera looks down at the floor
    "camera_distance": (0.9, 1.1),     # x the base distance; everything shrinks as 1/distance
    "light_azimuth": (-180.0, 0.0),    # degrees: -180 from the left, -90 from the camera, 0 from the right
    "light_elevation": (30.0, 75.0),   # degrees above the floor
    "light_strength": (0.75, 1.25),    # x the ambient and direct light, on floor and objects
}
LOOK_LIMITS = {  # beyond these, scenes stop looking like CLEVR (or objects no longer fit)
    "object_size": (0.3, 1.3), "camera_elevation": (15.0, 70.0), "camera_distance": (0.8, 2.0),
    "light_azimuth": (-360.0, 360.0), "light_elevation": (10.0, 90.0), "light_strength": (0.4, 1.6),
}
METAL_SHARE = 0.5  # share of metallic objects (darker, with sharp highlights); the rest are matte rubber
# One fixed look (one camera, one lamp, matte objects), for comparison: --object-size 1 1
# --camera-elevation 35 35 --camera-distance 1 1 --light-azimuth -145 -145 --light-elevation 53 53
# --light-strength 1 1 --metal 0


def check_look(ranges, metal_share):
    for key, (lo, hi) in ranges.items():
        flag = "--" + key.replace("_", "-")
        low, high = LOOK_LIMITS[key]
        check(low <= lo <= hi <= high, f"{flag} needs {low:g} <= LO <= HI <= {high:g} (got {lo:g} {hi:g})")
    check(0 <= metal_share <= 1, f"--metal must be in [0, 1] (got {metal_share:g})")


def draw_look(rng, ranges, metal_share):
    """One scene's camera and light (a dict of plain numbers and vectors)."""
    v = {key: float(rng.uniform(*ranges[key])) for key in LOOK_RANGES}
    elev, az, light_elev = np.radians([v["camera_elevation"], v["light_azimuth"], v["light_elevation"]])
    cos, sin = np.cos(elev), np.sin(elev)
    # World axes: x right, y away from the camera, z up.
    light = np.array([np.cos(az) * np.cos(light_elev), np.sin(az) * np.cos(light_elev), np.sin(light_elev)])
    to_eye = np.array([0.0, -cos, sin])
    half = (light + to_eye) / np.linalg.norm(light + to_eye)  # Blinn's half vector
    def view(w):  # the same vector seen from the camera: x right, y down the screen, z towards the viewer
        return np.array([w[0], -(w[2] * cos + w[1] * sin), w[2] * sin - w[1] * cos])
    return {"cos": cos, "sin": sin, "light": light, "half": half, "light_view": view(light),
            "half_view": view(half), "strength": v["light_strength"], "light_elevation": light_elev,
            "object_size": ranges["object_size"], "distance": v["camera_distance"], "metal_share": metal_share}


def _shade(rgb, f):
    """Darken towards black for f < 1 and lighten towards white for f > 1 (f scalar or array)."""
    c = np.asarray(rgb, np.float32)
    f = np.asarray(f, np.float32)[..., None]
    out = np.where(f <= 1, c * f, c + (255 - c) * (f - 1))
    return np.clip(out, 0, 255).astype(np.uint8)


def _light(lambert, spec, look, metal):
    """Brightness factor from the diffuse (n.l) and highlight (n.h) cosines: rubber is matte; metal is
    darker with a sharp highlight, as CLEVR's metal objects reflect a dim room."""
    lambert, spec = np.clip(lambert, 0, None), np.clip(spec, 0, None)
    if metal:
        return look["strength"] * (0.8 * _AMBIENT + 0.5 * _DIFFUSE * lambert) + 1.1 * spec ** 30
    return look["strength"] * (_AMBIENT + _DIFFUSE * lambert) + 0.25 * spec ** 40


def _face_light(normal, look, metal):
    return float(_light(np.dot(normal, look["light"]), np.dot(normal, look["half"]), look, metal))


def _outline(rgb):
    # A darker rim separates objects (gray ones especially) from the gray floor.
    return tuple(int(c * 0.4) for c in rgb)


@lru_cache(maxsize=4)
def _floor(width, height):
    """Floor brightness (before the light's strength) under a soft spotlight, as float32."""
    h, w = height * _SS, width * _SS
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((x / w - 0.48) / 0.9) ** 2 + ((y / h - 0.4) / 0.8) ** 2
    value = 158 - 60 * r2 - 8 * (y / h)  # brightest near the middle, falling off softly
    value += np.random.default_rng(0).normal(0, 1.2, value.shape)  # faint render grain
    return value[..., None] * np.array([1.0, 1.0, 1.02], np.float32)


def _geometry(obj, look):
    """Screen geometry (1x pixels) of an object whose footprint's lowest point is (u, v)."""
    u, v, s, shape = obj["u"], obj["v"], obj["size"], obj["shape"]
    cos, sin = look["cos"], look["sin"]
    if shape == "sphere":
        r = s / 2
        return {"center": (u, v - r), "r": r, "box": (u - r, v - 2 * r, u + r, v)}
    if shape == "cylinder":
        r, ry, height = 0.45 * s, 0.45 * s * sin, 0.85 * s * cos
        top, bottom = v - ry - height, v - ry
        return {"u": u, "r": r, "ry": ry, "top": top, "bottom": bottom,
                "box": (u - r, top - ry, u + r, v)}
    # Cube: rotate the footprint around the vertical axis, keep the faces facing us.
    side = 0.78 * s
    c, sn = np.cos(obj["angle"]), np.sin(obj["angle"])
    square = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * side / 2  # counter-clockwise
    corners = square @ np.array([[c, sn], [-sn, c]])

    def project(p, z):
        return np.array([p[0], -(z * cos + p[1] * sin)])

    faces = []
    for a, b in zip(corners, np.roll(corners, -1, axis=0)):
        normal = np.array([b[1] - a[1], a[0] - b[0], 0]) / side  # outward, corners run CCW
        if normal[1] < 0:  # faces the camera
            faces.append(([project(a, 0), project(b, 0), project(b, side), project(a, side)],
                          _face_light(normal, look, obj["metal"])))
    faces.append(([project(p, side) for p in corners], _face_light(np.array([0, 0, 1.0]), look, obj["metal"])))
    points = np.array([p for poly, _ in faces for p in poly])
    shift = np.array([u, v - points[:, 1].max()])
    faces = [([p + shift for p in poly], f) for poly, f in faces]
    (x0, y0), (x1, y1) = points.min(0) + shift, points.max(0) + shift
    return {"faces": faces, "box": (x0, y0, x1, y1)}


def _too_hidden(objs, width, height):
    """True if some object is mostly covered by nearer ones (boxes overestimate, so we err safe)."""
    g = 4
    cover = np.zeros((height // g + 1, width // g + 1), bool)
    for o in sorted(objs, key=lambda o: -o["v"]):  # nearest first
        x0, y0, x1, y1 = (int(c / g) for c in o["geo"]["box"])
        region = cover[y0:y1 + 1, x0:x1 + 1]
        if region.mean() > _HIDE_MAX:
            return True
        region[:] = True
    return False


def horizon_y(sin, cos, height):
    """Screen row of the horizon, above the image (negative): the camera looks down at the floor, and
    the steeper it looks (elevation with this sine and cosine), the further up."""
    return -0.5 * height * sin / cos / np.tan(np.radians(35))


def _layout(names, rng, look, width, height):
    """Place objects on the floor so each stays on screen and mostly visible; back to front."""
    horizon = horizon_y(look["sin"], look["cos"], height)
    while True:  # restarting is rare (a late object found no room) and always ends within a few tries
        placed = []
        for name in names:
            color, shape = name.split()
            scale = rng.uniform(*look["object_size"]) / look["distance"]
            metal = bool(rng.random() < look["metal_share"])
            for _ in range(100):
                v = rng.uniform(0.45, 0.95) * height
                # On a ground plane apparent size grows linearly with distance below the horizon.
                size = scale * rng.uniform(58, 88) * (v - horizon) / (height - horizon) * width / 320
                obj = {"color": color, "shape": shape, "v": v, "size": size, "metal": metal,
                       "u": rng.uniform(0.55 * size, width - 0.55 * size),
                       "angle": rng.uniform(0, np.pi / 2)}
                obj["geo"] = _geometry(obj, look)
                x0, y0, x1, y1 = obj["geo"]["box"]
                if x0 >= 1 and y0 >= 1 and x1 <= width - 1 and y1 <= height - 1 \
                        and not _too_hidden(placed + [obj], width, height):
                    placed.append(obj)
                    break
            else:
                break
        if len(placed) == len(names):
            return sorted(placed, key=lambda o: o["v"])


def _paste_shaded(img, x0, y0, rgb, f, mask):
    """Paste a per-pixel shaded patch (brightness f) of colour rgb where mask is set."""
    patch = Image.fromarray(_shade(rgb, f))
    img.paste(patch, (x0, y0), Image.fromarray(mask.astype(np.uint8) * 255))


def _draw_sphere(img, draw, obj, look, k):
    geo, rgb = obj["geo"], COLORS[obj["color"]]
    cx, cy, r = geo["center"][0] * k, geo["center"][1] * k, geo["r"] * k
    x0, y0 = int(cx - r), int(cy - r)
    y, x = np.mgrid[y0:int(cy + r) + 2, x0:int(cx + r) + 2].astype(np.float32)
    nx, ny = (x + 0.5 - cx) / r, (y + 0.5 - cy) / r
    nz = np.sqrt(np.clip(1 - nx ** 2 - ny ** 2, 0, 1))
    lv, hv = look["light_view"], look["half_view"]
    f = _light(nx * lv[0] + ny * lv[1] + nz * lv[2], nx * hv[0] + ny * hv[1] + nz * hv[2], look, obj["metal"])
    _paste_shaded(img, x0, y0, rgb, f, nx ** 2 + ny ** 2 <= 1)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=_outline(rgb), width=k)


def _draw_cylinder(img, draw, obj, look, k):
    g, rgb = obj["geo"], COLORS[obj["color"]]
    u, r, ry, top, bottom = (g[key] * k for key in ("u", "r", "ry", "top", "bottom"))
    x0, y0 = int(u - r), int(top)
    y, x = np.mgrid[y0:int(bottom + ry) + 2, x0:int(u + r) + 2].astype(np.float32)
    nx = np.clip((x + 0.5 - u) / r, -1, 1)
    ny = -np.sqrt(1 - nx ** 2)  # the visible side of the body faces the camera (negative y in the world)
    light, half = look["light"], look["half"]
    f = _light(nx * light[0] + ny * light[1], nx * half[0] + ny * half[1], look, obj["metal"])
    inside = (np.abs(x + 0.5 - u) <= r) & ((y <= bottom) | ((x + 0.5 - u) ** 2 / r ** 2
                                                           + (y - bottom) ** 2 / ry ** 2 <= 1))
    _paste_shaded(img, x0, y0, rgb, f, inside)
    edge = _outline(rgb)
    draw.arc((u - r, bottom - ry, u + r, bottom + ry), 0, 180, fill=edge, width=k)
    draw.line((u - r, top, u - r, bottom), fill=edge, width=k)
    draw.line((u + r, top, u + r, bottom), fill=edge, width=k)
    cap = tuple(int(c) for c in _shade(rgb, _face_light(np.array([0, 0, 1.0]), look, obj["metal"])))
    draw.ellipse((u - r, top - ry, u + r, top + ry), fill=cap, outline=edge, width=k)


def _draw_cube(img, draw, obj, look, k):
    rgb = COLORS[obj["color"]]
    for poly, f in obj["geo"]["faces"]:
        color = tuple(int(c) for c in _shade(rgb, f))
        draw.polygon([tuple(p * k) for p in poly], fill=color, outline=_outline(rgb), width=k)


_DRAW = {"cube": _draw_cube, "sphere": _draw_sphere, "cylinder": _draw_cylinder}


def render_scene(names, rng, width=320, height=240, ranges=None, metal_share=METAL_SHARE):
    """Render one scene containing the named objects under a look drawn from ranges (default
    LOOK_RANGES); returns an opaque RGBA image."""
    look = draw_look(rng, ranges or LOOK_RANGES, metal_share)
    objs = _layout(names, rng, look, width, height)
    lit = _floor(width, height) * look["strength"]
    floor = Image.fromarray(np.clip(lit, 0, 255).astype(np.uint8))
    dark = Image.fromarray(np.clip(lit * 0.55, 0, 255).astype(np.uint8))
    # Shadows are drawn small and blurred: cheap, and soft like CLEVR's area lights. They fall away
    # from the light, longer the lower it stands.
    light = look["light"]
    away = np.array([-light[0], light[1] * look["sin"]])  # on screen (y down), away from the lamp
    away /= max(np.linalg.norm(away), 1e-6)
    reach = min(0.35 / np.tan(look["light_elevation"]), 1.0)
    shadow = Image.new("L", (width // 2, height // 2), 0)
    shadow_draw = ImageDraw.Draw(shadow)
    for o in objs:
        s = o["size"] / 2
        x, y = o["u"] / 2 + away[0] * reach * s, o["v"] / 2 - 0.4 * s + away[1] * reach * s
        rx, ry = 0.45 * s + abs(away[0]) * reach * s, 0.35 * s + abs(away[1]) * reach * s * 0.5
        shadow_draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=210)
    shadow = shadow.filter(ImageFilter.GaussianBlur(2.5)).resize(floor.size, Image.BILINEAR)
    img = Image.composite(dark, floor, shadow)
    draw = ImageDraw.Draw(img)
    for o in objs:  # back to front, so nearer objects cover further ones
        _DRAW[o["shape"]](img, draw, o, look, _SS)
    img = img.resize((width, height), Image.LANCZOS)
    img.putalpha(255)
    return img


def random_objects(rng):
    """1-3 distinct object names, the count drawn uniformly."""
    count = int(rng.integers(1, 4))
    return [OBJECT_NAMES[i] for i in rng.choice(len(OBJECT_NAMES), count, replace=False)]


def image_stream(seed, i):
    """Image i's own random stream: the same image for any worker count and order."""
    return np.random.default_rng([seed, i])


def image_filename(i):
    return f"CLEVR_train_{i:06d}_{i % 3}.png"


def _render_one(job):
    out_dir, seed, i, ranges, metal_share = job
    rng = image_stream(seed, i)
    names = random_objects(rng)
    filename = image_filename(i)
    render_scene(names, rng, ranges=ranges, metal_share=metal_share).save(
        os.path.join(out_dir, "iclevr", filename), compress_level=1)
    return filename, names


def make_iclevr(out_dir, n=18009, seed=0, workers=2, ranges=None, metal_share=METAL_SHARE):
    """Write a synthetic i-CLEVR in the real layout: out_dir/iclevr/*.png, train.json, objects.json,
    test.json and new_test.json (the coursework's conditions, shipped in this repo's iclevr/).
    ranges: {name: (low, high)} overriding LOOK_RANGES entries."""
    ranges = {**LOOK_RANGES, **(ranges or {})}
    check_look(ranges, metal_share)
    write_iclevr(out_dir, [(out_dir, seed, i, ranges, metal_share) for i in range(n)], _render_one, workers)


def write_iclevr(out_dir, jobs, render_one, workers=2, desc="rendering i-CLEVR"):
    """Render jobs (render_one(job) saves one image into out_dir/iclevr/ and returns (filename, object
    names)) on workers processes, then write the real layout's JSON files beside them."""
    os.makedirs(os.path.join(out_dir, "iclevr"), exist_ok=True)
    from tqdm import tqdm
    bar = dict(total=len(jobs), desc=desc, disable=None, leave=False)
    if workers > 1:
        # Spawned, not forked, workers: a forked child inherits any lock another thread of the parent
        # held at the fork, and can hang on it; and the executor raises where a Pool would wait
        # forever on a worker that died. Chunks small enough that a small set is split among them.
        chunk = max(1, min(64, len(jobs) // (4 * workers)))
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            results = list(tqdm(pool.map(render_one, jobs, chunksize=chunk), **bar))
    else:
        results = [render_one(job) for job in tqdm(jobs, **bar)]
    for name in SPEC_FILES:
        shutil.copyfile(os.path.join(SPEC_DIR, name), os.path.join(out_dir, name))
    with open(os.path.join(out_dir, "train.json"), "w") as f:
        json.dump(dict(results), f)
    with open(os.path.join(out_dir, "objects.json"), "w") as f:
        json.dump({name: i for i, name in enumerate(OBJECT_NAMES)}, f)


def iclevr_outputs(out_dir):
    """What make_iclevr writes into out_dir, where it already exists."""
    names = [os.path.join(out_dir, n) for n in ("train.json", "objects.json", *SPEC_FILES)]
    images = glob.glob(os.path.join(glob.escape(out_dir), "iclevr", "*.png"))
    return [f for f in names if os.path.isfile(f)] + sorted(images)


def main():
    from training import ArgumentParser, HelpFormatter
    p = ArgumentParser(description="Dataset tools. make-iclevr: render a synthetic i-CLEVR in the real layout.")
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make-iclevr", formatter_class=HelpFormatter,
                       help="render a synthetic i-CLEVR (train.json, objects.json, test.json, new_test.json, iclevr/*.png)")
    m.add_argument("--out", required=True, help="folder to write")
    m.add_argument("--n", type=int, default=18009, help="number of training images (the real set has 18,009)")
    m.add_argument("--seed", type=int, default=0, help="random seed (same seed = same images)")
    m.add_argument("--workers", type=int, default=2, help="processes rendering in parallel")
    m.add_argument("--overwrite", action="store_true", help="replace the i-CLEVR already in --out (its JSON files "
                   "and iclevr/*.png; other files stay)")
    look = m.add_argument_group("look (each image draws its own value from LO..HI; LO = HI fixes it)")
    helps = {"object_size": "object size, x the base size", "camera_elevation": "degrees the camera looks down",
             "camera_distance": "camera distance, x the base (objects shrink as 1/distance)",
             "light_azimuth": "light direction, degrees: -180 left, -90 from the camera, 0 right",
             "light_elevation": "light height, degrees above the floor",
             "light_strength": "light strength, x the base (floor and objects)"}
    for key, (lo, hi) in LOOK_RANGES.items():
        look.add_argument("--" + key.replace("_", "-"), type=float, nargs=2, metavar=("LO", "HI"), default=[lo, hi],
                          help=f"{helps[key]} (default: {lo:g} {hi:g})")
    look.add_argument("--metal", type=float, default=METAL_SHARE,
                      help=f"share of metallic objects; the rest are matte (default: {METAL_SHARE:g})")
    args = p.parse_args()
    check(args.n > 0, f"--n must be > 0 (got {args.n})")
    check(args.workers > 0, f"--workers must be > 0 (got {args.workers})")
    ranges = {key: tuple(getattr(args, key)) for key in LOOK_RANGES}
    check_look(ranges, args.metal)
    from training import make_run_dir
    existing = iclevr_outputs(args.out)
    check(not existing or args.overwrite, f"{args.out} already holds an i-CLEVR ({len(existing)} files); choose "
          f"another --out, or replace it with --overwrite")
    for f in existing:  # a smaller set written over a larger one would leave the larger one's images behind
        os.remove(f)
    make_run_dir(args.out)
    make_iclevr(args.out, args.n, args.seed, args.workers, ranges, args.metal)
    print(f"wrote {args.n} images to {args.out}")


if __name__ == "__main__":
    from training import run_cli
    run_cli(main)
