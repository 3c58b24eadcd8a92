//! Merging raw window hits into detections, as OpenCV's `groupRectangles` does: hits are
//! partitioned into classes of similar rectangles (transitively), each class with more than
//! `min_neighbors` members becomes its average rectangle, and a small class lying inside a
//! stronger one is dropped.

use super::Rect;

/// OpenCV's `GROUP_EPS` used by `detectMultiScale`.
pub const GROUP_EPS: f64 = 0.2;

/// A merged detection and the number of raw hits behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    pub rect: Rect,
    pub neighbors: usize,
}

fn similar(a: &Rect, b: &Rect, eps: f64) -> bool {
    let delta = eps * f64::from(a.width.min(b.width) + a.height.min(b.height)) * 0.5;
    let close = |p: i32, q: i32| f64::from((p - q).abs()) <= delta;
    close(a.x, b.x)
        && close(a.y, b.y)
        && close(a.x + a.width, b.x + b.width)
        && close(a.y + a.height, b.y + b.height)
}

/// Class label per rectangle, numbered in order of each class's first member (as
/// `cv::partition` numbers them).
fn partition(rects: &[Rect], eps: f64) -> (Vec<usize>, usize) {
    let mut parent: Vec<usize> = (0..rects.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for i in 0..rects.len() {
        for j in 0..i {
            if similar(&rects[i], &rects[j], eps) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                if a != b {
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
    }
    let mut class_of_root = vec![usize::MAX; rects.len()];
    let mut classes = 0;
    let labels = (0..rects.len())
        .map(|i| {
            let r = root(&mut parent, i);
            if class_of_root[r] == usize::MAX {
                class_of_root[r] = classes;
                classes += 1;
            }
            class_of_root[r]
        })
        .collect();
    (labels, classes)
}

/// OpenCV's `saturate_cast<int>` of a double: round half to even.
fn round(value: f64) -> i32 {
    value.round_ties_even() as i32
}

/// Groups raw hits; returns detections in class order.
pub fn group_rectangles(rects: &[Rect], min_neighbors: usize, eps: f64) -> Vec<Group> {
    if min_neighbors == 0 {
        return rects
            .iter()
            .map(|&rect| Group { rect, neighbors: 1 })
            .collect();
    }
    let (labels, classes) = partition(rects, eps);
    let mut sums = vec![[0i64; 4]; classes];
    let mut counts = vec![0usize; classes];
    for (rect, &label) in rects.iter().zip(&labels) {
        let s = &mut sums[label];
        s[0] += i64::from(rect.x);
        s[1] += i64::from(rect.y);
        s[2] += i64::from(rect.width);
        s[3] += i64::from(rect.height);
        counts[label] += 1;
    }
    let averages: Vec<Rect> = sums
        .iter()
        .zip(&counts)
        .map(|(s, &n)| {
            let n = n as f64;
            Rect {
                x: round(s[0] as f64 / n),
                y: round(s[1] as f64 / n),
                width: round(s[2] as f64 / n),
                height: round(s[3] as f64 / n),
            }
        })
        .collect();
    (0..classes)
        .filter(|&i| counts[i] > min_neighbors)
        .filter(|&i| !inside_a_stronger_group(i, &averages, &counts, min_neighbors, eps))
        .map(|i| Group {
            rect: averages[i],
            neighbors: counts[i],
        })
        .collect()
}

fn inside_a_stronger_group(
    i: usize,
    rects: &[Rect],
    counts: &[usize],
    min_neighbors: usize,
    eps: f64,
) -> bool {
    let (r1, n1) = (rects[i], counts[i]);
    (0..rects.len()).any(|j| {
        let (r2, n2) = (rects[j], counts[j]);
        if j == i || n2 <= min_neighbors {
            return false;
        }
        let dx = round(f64::from(r2.width) * eps);
        let dy = round(f64::from(r2.height) * eps);
        r1.x >= r2.x - dx
            && r1.y >= r2.y - dy
            && r1.x + r1.width <= r2.x + r2.width + dx
            && r1.y + r1.height <= r2.y + r2.height + dy
            && (n2 > n1.max(3) || n1 < 3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: i32, y: i32, w: i32, h: i32) -> Rect {
        Rect {
            x,
            y,
            width: w,
            height: h,
        }
    }

    #[test]
    fn similar_hits_merge_into_their_average() {
        // Three near-identical hits (delta = 0.2 · (40 + 40) / 2 = 8) and one far away.
        let hits = [
            rect(100, 100, 40, 40),
            rect(104, 102, 40, 40),
            rect(102, 98, 42, 42),
            rect(300, 50, 40, 40),
        ];
        let groups = group_rectangles(&hits, 2, GROUP_EPS);
        // (100+104+102)/3 = 102, (100+102+98)/3 = 100, (40+40+42)/3 = 40.67 → 41.
        assert_eq!(
            groups,
            vec![Group {
                rect: rect(102, 100, 41, 41),
                neighbors: 3
            }]
        );
        // With min_neighbors 3 a class needs more than 3 hits.
        assert!(group_rectangles(&hits, 3, GROUP_EPS).is_empty());
    }

    #[test]
    fn grouping_is_transitive() {
        // a~b and b~c but not a~c: one class of three.
        let hits = [rect(0, 0, 50, 50), rect(9, 0, 50, 50), rect(18, 0, 50, 50)];
        let groups = group_rectangles(&hits, 1, GROUP_EPS);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].rect, rect(9, 0, 50, 50));
    }

    #[test]
    fn a_weak_group_inside_a_strong_one_is_dropped() {
        let mut hits = vec![rect(100, 100, 100, 100); 6];
        hits.extend([rect(130, 130, 30, 30); 3]);
        let groups = group_rectangles(&hits, 2, GROUP_EPS);
        assert_eq!(
            groups,
            vec![Group {
                rect: rect(100, 100, 100, 100),
                neighbors: 6
            }]
        );
    }
}
