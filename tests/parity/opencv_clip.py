#!/usr/bin/env python3
"""OpenCV's detectMultiScale over every frame of a clip, for the real-time bench.

Reads N grey frames of WIDTH x HEIGHT bytes each, back to back, from one raw file (the
bench writes the clip's frames greyed exactly as the kiosk greys them), runs
cv2.CascadeClassifier.detectMultiScale on each with the given parameters and OpenCV threads,
and prints JSON: {"threads": T, "wall_s_per_frame": s, "cpu_s_per_frame": s,
"faces": [[[x, y, w, h], ...] per frame]}. The faces come from the timed pass itself.
Needs `opencv-python-headless<5` (PyPI).
"""
import argparse
import json
import sys
import time

try:
    import cv2
    import numpy as np
except ImportError:
    sys.exit("opencv_clip.py needs OpenCV: pip install 'opencv-python-headless<5'")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", required=True, help="raw grey frames, back to back")
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--height", type=int, required=True)
    parser.add_argument("--cascade", required=True)
    parser.add_argument("--scale-factor", type=float, default=1.1)
    parser.add_argument("--min-neighbors", type=int, default=5)
    parser.add_argument("--min-size", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1,
                        help="OpenCV threads (0: OpenCV's default, every core)")
    args = parser.parse_args()

    if args.threads > 0:
        cv2.setNumThreads(args.threads)
    cv2.ocl.setUseOpenCL(False)
    classifier = cv2.CascadeClassifier(args.cascade)
    if classifier.empty():
        sys.exit(f"cannot load cascade {args.cascade}")
    raw = np.fromfile(args.frames, dtype=np.uint8)
    frame_len = args.width * args.height
    if raw.size == 0 or raw.size % frame_len != 0:
        sys.exit(f"{args.frames}: {raw.size} bytes is not a whole number of frames")
    frames = raw.reshape(-1, args.height, args.width)

    faces = []
    wall, cpu = time.perf_counter(), time.process_time()
    for grey in frames:
        found = classifier.detectMultiScale(
            grey,
            scaleFactor=args.scale_factor,
            minNeighbors=args.min_neighbors,
            minSize=(args.min_size, args.min_size),
        )
        faces.append([[int(v) for v in f] for f in found])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(json.dumps({
        "threads": cv2.getNumThreads(),
        "wall_s_per_frame": wall / len(frames),
        "cpu_s_per_frame": cpu / len(frames),
        "faces": faces,
    }))


if __name__ == "__main__":
    main()
