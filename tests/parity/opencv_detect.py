#!/usr/bin/env python3
"""Reference detections from real OpenCV for the parity tests and the speed bench.

Prints the same JSON as `kiosk detect --json`: one object per image,
{"image": PATH, "faces": [[x, y, w, h], ...]}, using cv2.CascadeClassifier.detectMultiScale
single-threaded on the grey image (cv2.COLOR_BGR2GRAY, the same weights as ours).

With --time N it also reports the mean seconds per detectMultiScale call over N repeats.
Needs `opencv-python-headless<5` (PyPI).
"""
import argparse
import json
import sys
import time

try:
    import cv2
except ImportError:
    sys.exit("opencv_detect.py needs OpenCV: pip install 'opencv-python-headless<5'")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("images", nargs="+")
    parser.add_argument("--cascade", required=True)
    parser.add_argument("--scale-factor", type=float, default=1.1)
    parser.add_argument("--min-neighbors", type=int, default=5)
    parser.add_argument("--min-size", type=int, default=30)
    parser.add_argument("--time", type=int, default=0, help="repeats for timing")
    args = parser.parse_args()

    cv2.setNumThreads(1)
    cv2.ocl.setUseOpenCL(False)
    classifier = cv2.CascadeClassifier(args.cascade)
    if classifier.empty():
        sys.exit(f"cannot load cascade {args.cascade}")
    results = []
    for path in args.images:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            sys.exit(f"cannot read {path}")
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)

        def detect():
            return classifier.detectMultiScale(
                grey,
                scaleFactor=args.scale_factor,
                minNeighbors=args.min_neighbors,
                minSize=(args.min_size, args.min_size),
            )

        faces = detect()
        entry = {"image": path, "faces": [[int(v) for v in f] for f in faces]}
        if args.time > 0:
            started = time.perf_counter()
            for _ in range(args.time):
                detect()
            entry["seconds"] = (time.perf_counter() - started) / args.time
        results.append(entry)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
