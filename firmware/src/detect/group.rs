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

/// Working lists of a grouping, kept between frames so that grouping a frame's hits
/// allocates nothing once they have grown to the frame's number of hits.
#[derive(Debug, Default)]
pub struct Grouper {
    parent: Vec<usize>,
    class_of_root: Vec<usize>,
    labels: Vec<usize>,
    sums: Vec<[i64; 4]>,
    counts: Vec<usize>,
    averages: Vec<Rect>,
}

impl Grouper {
    /// Groups raw hits into `out` (cleared first), detections in class order.
    pub fn group_into(
        &mut self,
        rects: &[Rect],
        min_neighbors: usize,
        eps: f64,
        out: &mut Vec<Group>,
    ) {
        out.clear();
        if min_neighbors == 0 {
            out.extend(rects.iter().map(|&rect| Group { rect, neighbors: 1 }));
            return;
        }
        let classes = self.partition(rects, eps);
        self.average(rects, classes);
        let (averages, counts) = (&self.averages, &self.counts);
        out.extend(
            (0..classes)
                .filter(|&i| counts[i] > min_neighbors)
                .filter(|&i| !inside_a_stronger_group(i, averages, counts, min_neighbors, eps))
                .map(|i| Group {
                    rect: averages[i],
                    neighbors: counts[i],
                }),
        );
    }

    /// Labels each rectangle with its class, numbered in order of each class's first
    /// member (as `cv::partition` numbers them); returns the number of classes.
    fn partition(&mut self, rects: &[Rect], eps: f64) -> usize {
        fn root(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        }
        let parent = &mut self.parent;
        parent.clear();
        parent.extend(0..rects.len());
        for i in 0..rects.len() {
            for j in 0..i {
                if similar(&rects[i], &rects[j], eps) {
                    let (a, b) = (root(parent, i), root(parent, j));
                    if a != b {
                        parent[a.max(b)] = a.min(b);
                    }
                }
            }
        }
        self.class_of_root.clear();
        self.class_of_root.resize(rects.len(), usize::MAX);
        self.labels.clear();
        let mut classes = 0;
        for i in 0..rects.len() {
            let r = root(parent, i);
            if self.class_of_root[r] == usize::MAX {
                self.class_of_root[r] = classes;
                classes += 1;
            }
            self.labels.push(self.class_of_root[r]);
        }
        classes
    }

    /// Each class's member count and average rectangle.
    fn average(&mut self, rects: &[Rect], classes: usize) {
        self.sums.clear();
        self.sums.resize(classes, [0; 4]);
        self.counts.clear();
        self.counts.resize(classes, 0);
        for (rect, &label) in rects.iter().zip(&self.labels) {
            let s = &mut self.sums[label];
            s[0] += i64::from(rect.x);
            s[1] += i64::from(rect.y);
            s[2] += i64::from(rect.width);
            s[3] += i64::from(rect.height);
            self.counts[label] += 1;
        }
        self.averages.clear();
        self.averages
            .extend(self.sums.iter().zip(&self.counts).map(|(s, &n)| {
                let n = n as f64;
                Rect {
                    x: round(s[0] as f64 / n),
                    y: round(s[1] as f64 / n),
                    width: round(s[2] as f64 / n),
                    height: round(s[3] as f64 / n),
                }
            }));
    }
}

/// OpenCV's `saturate_cast<int>` of a double: round half to even.
fn round(value: f64) -> i32 {
    value.round_ties_even() as i32
}

/// Groups raw hits; returns detections in class order. (A one-off [`Grouper`].)
pub fn group_rectangles(rects: &[Rect], min_neighbors: usize, eps: f64) -> Vec<Group> {
    let mut groups = Vec::new();
    Grouper::default().group_into(rects, min_neighbors, eps, &mut groups);
    groups
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

    #[test]
    fn a_reused_grouper_forgets_the_previous_frame() {
        let big_frame: Vec<Rect> = (0..40).map(|i| rect(10 + i % 4, 10, 60, 60)).collect();
        let small_frame = [
            rect(200, 50, 30, 30),
            rect(201, 51, 30, 30),
            rect(5, 5, 20, 20),
        ];
        let mut grouper = Grouper::default();
        let mut groups = Vec::new();
        for hits in [&big_frame[..], &small_frame[..], &big_frame[..], &[][..]] {
            grouper.group_into(hits, 1, GROUP_EPS, &mut groups);
            assert_eq!(groups, group_rectangles(hits, 1, GROUP_EPS));
        }
        assert!(groups.is_empty());
    }
}
