"""A second synthetic i-CLEVR, drawn by a renderer written apart from data.py's, to check that the cGAN's
default carries to scenes it was never tuned on: true 3D spheres, cubes and cylinders ray-cast under a
perspective camera (CLEVR's 49-degree lens), lit by a key light whose shadows are ray-traced towards a point
jittered per pixel (dithered edges, soft once the image is shrunk), a fill light and a dim room that metal
reflects; CLEVR's colours and placement (objects in [-3, 3]^2, 0.25 apart), objects of radius 0.5-0.7
(CLEVR's: 0.35 and 0.7). data.py draws flat 2D shapes shaded by hand instead.

    python docs/raycast_iclevr.py --out R --n 10000 --seed 21     # the layout make-iclevr writes (RGB PNGs)

Each image draws its own camera (distance, height, direction) and key light; the same seed gives the
same images for any worker count.
"""
import os
import sys
from collections import namedtuple

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data import COLORS, image_filename, image_stream, iclevr_outputs, random_objects, write_iclevr  # noqa: E402
from training import ArgumentParser, check, run_cli  # noqa: E402

WIDTH, HEIGHT, FOV = 320, 240, np.radians(49.1)  # CLEVR's image size and lens
RADIUS = (0.5, 0.7)           # object radius (CLEVR: 0.35 small, 0.7 large; a cube's half side is r / sqrt 2)
CAMERA_DISTANCE = (10.0, 12.0)
CAMERA_ELEVATION = (25.0, 45.0)  # degrees above the floor
LIGHT_ELEVATION = (30.0, 70.0)
LIGHT_STRENGTH = (0.8, 1.2)
METAL_SHARE = 0.5
MIN_UNHIDDEN = 0.6  # a scene is drawn again where an object shows less than this share of itself
EPS = 1e-4  # nearest hit distance: a ray leaving a surface must not hit that surface again
Camera = namedtuple("Camera", "eye forward right up focal")  # focal: in pixels


def unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def hit_sphere(o, d, obj):
    c = np.array([obj["x"], obj["y"], obj["r"]])
    oc = o - c
    b = np.einsum("ij,ij->i", oc, d)
    disc = b * b - (np.einsum("ij,ij->i", oc, oc) - obj["r"] ** 2)
    t = np.where(disc > 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
    t = np.where(t > EPS, t, np.inf)
    return t, unit(o + np.where(np.isfinite(t), t, 0)[:, None] * d - c)


def hit_cylinder(o, d, obj):
    r, h = obj["r"], 2 * obj["r"]
    ox, oy = o[:, 0] - obj["x"], o[:, 1] - obj["y"]
    a = d[:, 0] ** 2 + d[:, 1] ** 2 + 1e-12
    b = ox * d[:, 0] + oy * d[:, 1]
    disc = b * b - a * (ox * ox + oy * oy - r * r)
    side = np.where(disc > 0, (-b - np.sqrt(np.maximum(disc, 0))) / a, np.inf)
    z = o[:, 2] + side * d[:, 2]
    side = np.where((side > EPS) & (z >= 0) & (z <= h), side, np.inf)
    dz = np.where(np.abs(d[:, 2]) > 1e-9, d[:, 2], 1e-9)
    cap = (h - o[:, 2]) / dz
    cx, cy = ox + cap * d[:, 0], oy + cap * d[:, 1]
    cap = np.where((cap > EPS) & (cx * cx + cy * cy <= r * r), cap, np.inf)
    t = np.minimum(side, cap)
    p = o + np.where(np.isfinite(t), t, 0)[:, None] * d
    side_normal = np.stack([(p[:, 0] - obj["x"]) / r, (p[:, 1] - obj["y"]) / r, np.zeros(len(t))], 1)
    normal = np.where((cap <= side)[:, None], np.array([0.0, 0.0, 1.0]), side_normal)
    return t, normal


def cube_half_side(r):
    return r / np.sqrt(2)  # CLEVR's: a cube of "radius" r fits in the circle of radius r on the floor


def hit_cube(o, d, obj):
    half = cube_half_side(obj["r"])
    cos, sin = np.cos(obj["angle"]), np.sin(obj["angle"])
    rot = np.array([[cos, sin, 0], [-sin, cos, 0], [0, 0, 1]])  # world -> the cube's own axes
    lo = (o - np.array([obj["x"], obj["y"], half])) @ rot.T
    ld = d @ rot.T
    ld = np.where(np.abs(ld) > 1e-9, ld, 1e-9)
    t1, t2 = (-half - lo) / ld, (half - lo) / ld
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)
    t_in, t_out = near.max(1), far.min(1)
    t = np.where((t_in <= t_out) & (t_in > EPS), t_in, np.inf)
    axis = near.argmax(1)
    local = np.zeros_like(lo)
    local[np.arange(len(t)), axis] = -np.sign(ld[np.arange(len(t)), axis])
    return t, local @ rot


HIT = {"sphere": hit_sphere, "cylinder": hit_cylinder, "cube": hit_cube}


def camera(rng):
    dist, elev = rng.uniform(*CAMERA_DISTANCE), np.radians(rng.uniform(*CAMERA_ELEVATION))
    az = rng.uniform(0, 2 * np.pi)
    eye = dist * np.array([np.cos(elev) * np.cos(az), np.cos(elev) * np.sin(az), np.sin(elev)])
    forward = unit(-eye)
    right = unit(np.cross(forward, [0.0, 0.0, 1.0]))
    up = np.cross(right, forward)
    return Camera(eye, forward, right, up, WIDTH / 2 / np.tan(FOV / 2))


def project(p, cam):
    v = p - cam.eye
    depth = v @ cam.forward
    return WIDTH / 2 + cam.focal * (v @ cam.right) / depth, HEIGHT / 2 - cam.focal * (v @ cam.up) / depth


def object_width(obj, cam):
    """About how many pixels wide an object is drawn (face-on: a cube seen corner-on is up to sqrt 2 wider)."""
    size = 2 * cube_half_side(obj["r"]) if obj["shape"] == "cube" else 2 * obj["r"]
    return cam.focal * size / ((np.array([obj["x"], obj["y"], obj["r"]]) - cam.eye) @ cam.forward)


def layout(names, rng, cam):
    """CLEVR's placement: random spots in [-3, 3]^2, 0.25 between objects, each object in the frame."""
    for _ in range(200):
        objs = []
        for name in names:
            color, shape = name.split()
            r = rng.uniform(*RADIUS)
            for _ in range(50):
                x, y = rng.uniform(-3, 3, 2)
                if all(np.hypot(x - q["x"], y - q["y"]) > r + q["r"] + 0.25 for q in objs):
                    break
            else:
                break
            u, v = project(np.array([x, y, r]), cam)
            if not (0.08 * WIDTH < u < 0.92 * WIDTH and 0.1 * HEIGHT < v < 0.92 * HEIGHT):  # all of it in frame
                break
            objs.append(dict(x=x, y=y, r=r, shape=shape, color=color, angle=rng.uniform(0, np.pi / 2),
                             metal=bool(rng.random() < METAL_SHARE)))
        if len(objs) == len(names):
            return objs
    raise RuntimeError(f"no layout found for {names}")


def scene(names, rng):
    """A scene's camera and objects (the first draws of its stream, before the light)."""
    cam = camera(rng)
    return cam, layout(names, rng, cam)


def render(names, rng):
    """One scene as an RGB uint8 (HEIGHT, WIDTH, 3) array; None where an object is too hidden to tell."""
    cam, objs = scene(names, rng)
    eye, forward, right, up, focal = cam
    j, i = np.mgrid[0:HEIGHT, 0:WIDTH]
    d = unit((forward * focal)[None] + np.outer(i.ravel() + 0.5 - WIDTH / 2, right)
             + np.outer(HEIGHT / 2 - j.ravel() - 0.5, up))
    o = np.broadcast_to(eye, d.shape)
    n_rays = len(d)
    floor_t = np.where(d[:, 2] < 0, -eye[2] / np.minimum(d[:, 2], -1e-9), np.inf)
    hits = [HIT[obj["shape"]](o, d, obj) for obj in objs]
    ts = np.stack([floor_t] + [t for t, _ in hits])  # (1 + objects, rays)
    nearest = ts.argmin(0)
    for k in range(1, len(ts)):  # pixels where object k is the nearest, against all it covers
        if (nearest == k).sum() < MIN_UNHIDDEN * np.isfinite(ts[k]).sum():
            return None
    t = ts.min(0)
    p = eye + np.where(np.isfinite(t), t, 0)[:, None] * d
    normal = np.tile([0.0, 0.0, 1.0], (n_rays, 1))
    for k, (_, nk) in enumerate(hits, 1):
        normal = np.where((nearest == k)[:, None], nk, normal)

    light_az, light_el = rng.uniform(0, 2 * np.pi), np.radians(rng.uniform(*LIGHT_ELEVATION))
    key = np.array([np.cos(light_el) * np.cos(light_az), np.cos(light_el) * np.sin(light_az), np.sin(light_el)])
    strength = rng.uniform(*LIGHT_STRENGTH)
    to_area = unit(key[None] + 0.06 * rng.normal(size=(n_rays, 3)))  # a point of an area light: soft shadow edges
    start = p + 1e-3 * normal
    lit = np.ones(n_rays)
    for obj in objs:
        lit = np.where(np.isfinite(HIT[obj["shape"]](start, to_area, obj)[0]), 0.0, lit)
    to_light = np.broadcast_to(key, d.shape)
    fill = unit(-forward * np.array([1, 1, 0]) + np.array([0, 0, 0.8]))  # from the camera's side, raised; no shadow
    diffuse = np.clip(np.einsum("ij,ij->i", normal, to_light), 0, None) * lit
    fill_diffuse = np.clip(normal @ fill, 0, None)
    halfway = unit(to_light - d)  # Blinn's half vector
    spec = np.clip(np.einsum("ij,ij->i", normal, halfway), 0, None)

    # Floor: a matte gray under the lights, a little darker away from the middle.
    radial = np.hypot(p[:, 0], p[:, 1])
    albedo = np.full((n_rays, 3), 0.32) * (1 - 0.35 * np.clip(radial / 12, 0, 1))[:, None]
    color = albedo * (0.35 + strength * 0.75 * diffuse + 0.25 * fill_diffuse)[:, None]
    # Metal is a coloured mirror of a dim room: brighter where it reflects the ceiling.
    refl = d - 2 * np.einsum("ij,ij->i", d, normal)[:, None] * normal
    room = 0.25 + 0.45 * np.clip(refl[:, 2], 0, 1)
    for k, obj in enumerate(objs, 1):
        mask = nearest == k
        base = (np.array(COLORS[obj["color"]]) / 255.0) ** 2.2
        if obj["metal"]:
            c = base[None] * (0.15 + strength * 0.45 * diffuse + 0.1 * fill_diffuse + room)[:, None] \
                + (strength * 0.9 * spec ** 90 * lit)[:, None]
        else:
            c = base[None] * (0.3 + strength * 0.85 * diffuse + 0.3 * fill_diffuse)[:, None] \
                + (strength * 0.08 * spec ** 12 * lit)[:, None]
        color = np.where(mask[:, None], c, color)
    rgb = np.clip(color, 0, 1) ** (1 / 2.2) * 255
    return rgb.reshape(HEIGHT, WIDTH, 3).round().astype(np.uint8)


def render_one(job):
    out_dir, seed, i = job
    rng = image_stream(seed, i)
    names = random_objects(rng)
    while (img := render(names, rng)) is None:
        pass
    filename = image_filename(i)
    Image.fromarray(img).save(os.path.join(out_dir, "iclevr", filename), compress_level=1)
    return filename, names


def main():
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder to write (train.json, objects.json, test.json, "
                   "new_test.json, iclevr/*.png)")
    p.add_argument("--n", type=int, default=10000, help="number of training images")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed = same images)")
    p.add_argument("--workers", type=int, default=2, help="processes rendering in parallel")
    args = p.parse_args()
    check(args.n > 0 and args.workers > 0, f"--n and --workers must be > 0 (got {args.n}, {args.workers})")
    check(not iclevr_outputs(args.out), f"{args.out} already holds an i-CLEVR; choose another --out")
    write_iclevr(args.out, [(args.out, args.seed, i) for i in range(args.n)], render_one, args.workers,
                 "ray-casting i-CLEVR")
    print(f"wrote {args.n} images to {args.out}")


if __name__ == "__main__":
    run_cli(main)
