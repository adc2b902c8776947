//! Shards: the I-th of N disjoint, deterministic slices of a job's list of images, so that one
//! job runs as N processes on N machines (a Slurm job array, a Kubernetes Indexed Job) and
//! `fixres merge` puts their results together (ARCHITECTURE.md, "Shards").

use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The `index`-th (1-based) of `count` slices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// 1..=count.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// How a shard was asked for on the command line: `I/N`, or `auto` (from the scheduler).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardSpec {
    /// `I/N`.
    Given(Shard),
    /// `auto`: the index from a job array's environment.
    Auto,
}

impl Shard {
    /// The whole list as one shard.
    pub const WHOLE: Self = Self { index: 1, count: 1 };

    /// A shard, checked: `1 <= index <= count`.
    pub fn new(index: usize, count: usize) -> Result<Self, String> {
        if count == 0 {
            return Err("a shard count of 0: there must be at least one shard".into());
        }
        if index == 0 || index > count {
            return Err(format!(
                "shard {index}/{count}: the index must be 1 to {count} (shards are numbered from 1)"
            ));
        }
        Ok(Self { index, count })
    }

    /// This shard's slice of a list of `len` items: contiguous, and over the N shards every item
    /// once (shard sizes differ by at most one).
    #[must_use]
    pub fn range(self, len: usize) -> Range<usize> {
        (self.index - 1) * len / self.count..self.index * len / self.count
    }

    /// Resolves a spec: `auto` reads the environment through `var` (`std::env::var` in use):
    /// Slurm's `SLURM_ARRAY_TASK_ID` (less `SLURM_ARRAY_TASK_MIN`, over `SLURM_ARRAY_TASK_STEP`)
    /// with `SLURM_ARRAY_TASK_COUNT`, or a Kubernetes Indexed Job's `JOB_COMPLETION_INDEX`
    /// (0-based) with the count from `count` (`--shard-count`) or `FIXRES_SHARD_COUNT`.
    pub fn resolve(
        spec: ShardSpec,
        count: Option<usize>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let number = |name: &str| -> Result<Option<usize>, String> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| format!("--shard auto: {name}={v:?} is not a whole number"))
                })
                .transpose()
        };
        match spec {
            ShardSpec::Given(s) => {
                if let Some(c) = count.filter(|&c| c != s.count) {
                    return Err(format!("--shard {s} with --shard-count {c}: give the count once"));
                }
                Ok(s)
            }
            ShardSpec::Auto => {
                if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
                    let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
                    let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
                    let n = match (count, number("SLURM_ARRAY_TASK_COUNT")?) {
                        (Some(c), _) | (None, Some(c)) => c,
                        (None, None) => {
                            return Err(
                                "--shard auto: SLURM_ARRAY_TASK_ID is set but not SLURM_ARRAY_TASK_COUNT; \
                                 give --shard-count"
                                    .into(),
                            );
                        }
                    };
                    if id < min || (id - min) % step != 0 {
                        return Err(format!(
                            "--shard auto: SLURM_ARRAY_TASK_ID={id} is not in the array (min {min}, step {step})"
                        ));
                    }
                    Self::new((id - min) / step + 1, n).map_err(|e| format!("--shard auto (Slurm): {e}"))
                } else if let Some(i) = number("JOB_COMPLETION_INDEX")? {
                    let n = match count.or(number("FIXRES_SHARD_COUNT")?) {
                        Some(n) => n,
                        None => {
                            return Err("--shard auto: JOB_COMPLETION_INDEX is set but the number of shards is \
                                 not: give --shard-count (the Job's completions) or set FIXRES_SHARD_COUNT"
                                .into());
                        }
                    };
                    Self::new(i + 1, n).map_err(|e| format!("--shard auto (Kubernetes): {e}"))
                } else {
                    Err(
                        "--shard auto: no job-array variables in the environment (SLURM_ARRAY_TASK_ID, \
                         JOB_COMPLETION_INDEX); give --shard I/N"
                            .into(),
                    )
                }
            }
        }
    }
}

impl std::str::FromStr for ShardSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(Self::Auto);
        }
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: expected I/N (e.g. 2/8: the second of eight shards) or auto"))?;
        let parse = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| format!("{s:?}: expected I/N with whole numbers, e.g. 2/8"))
        };
        Shard::new(parse(i)?, parse(n)?).map(Self::Given)
    }
}

/// Checks that `parts` (given as `(path, shard)`) are the N shards of one job, each once, all
/// agreeing with the first on what `same` returns; returns them in shard order. Shared by every
/// kind of part (eval, features, trunk caches).
pub fn in_order<T>(
    mut parts: Vec<T>,
    path: impl Fn(&T) -> &Path,
    shard: impl Fn(&T) -> Shard,
    differs: impl Fn(&T, &T) -> Option<String>,
) -> anyhow::Result<Vec<T>> {
    anyhow::ensure!(!parts.is_empty(), "no parts to merge");
    let count = shard(&parts[0]).count;
    for p in &parts[1..] {
        anyhow::ensure!(
            shard(p).count == count,
            "{}: shard {} of a {}-shard run, but {} is of a {count}-shard run",
            path(p).display(),
            shard(p),
            shard(p).count,
            path(&parts[0]).display()
        );
        if let Some(why) = differs(&parts[0], p) {
            anyhow::bail!(
                "{}: not a part of the same run as {} ({why})",
                path(p).display(),
                path(&parts[0]).display()
            );
        }
    }
    parts.sort_by_key(|p| shard(p).index);
    for w in parts.windows(2) {
        anyhow::ensure!(
            shard(&w[0]).index != shard(&w[1]).index,
            "{} and {}: both are shard {}",
            path(&w[0]).display(),
            path(&w[1]).display(),
            shard(&w[0])
        );
    }
    let have: Vec<usize> = parts.iter().map(|p| shard(p).index).collect();
    let missing: Vec<String> = (1..=count)
        .filter(|i| !have.contains(i))
        .map(|i| format!("{i}/{count}"))
        .collect();
    anyhow::ensure!(missing.is_empty(), "missing shard {} of {count}", missing.join(", "));
    Ok(parts)
}

/// A fingerprint of bytes (FNV-1a, 64 bits) as 16 hex digits: parts of one job name the same
/// weights by it wherever the file lies on each machine.
#[must_use]
pub fn fingerprint(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn shards_cover_every_item_once() {
        for len in [0, 1, 5, 13, 100] {
            for count in 1..=7 {
                let mut seen = Vec::new();
                for index in 1..=count {
                    let r = Shard::new(index, count).unwrap().range(len);
                    assert!(r.len() <= len.div_ceil(count) && r.len() + 1 >= len / count);
                    seen.extend(r);
                }
                assert_eq!(seen, (0..len).collect::<Vec<_>>(), "len {len}, count {count}");
            }
        }
    }

    #[test]
    fn specs_parse_and_bad_ones_are_refused() {
        assert_eq!("2/4".parse(), Ok(ShardSpec::Given(Shard { index: 2, count: 4 })));
        assert_eq!("auto".parse(), Ok(ShardSpec::Auto));
        for bad in ["5/4", "0/4", "1/0", "2", "a/4", "-1/4"] {
            let e = bad.parse::<ShardSpec>().unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
        assert!("5/4".parse::<ShardSpec>().unwrap_err().contains("1 to 4"));
    }

    #[test]
    fn auto_reads_slurm_and_kubernetes() {
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
        ]);
        assert_eq!(
            Shard::resolve(ShardSpec::Auto, None, slurm),
            Ok(Shard { index: 4, count: 4 })
        );
        let one_based = env(&[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
        ]);
        assert_eq!(
            Shard::resolve(ShardSpec::Auto, None, one_based),
            Ok(Shard { index: 1, count: 4 })
        );
        let stepped = env(&[
            ("SLURM_ARRAY_TASK_ID", "8"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_STEP", "4"),
        ]);
        assert_eq!(
            Shard::resolve(ShardSpec::Auto, None, stepped),
            Ok(Shard { index: 3, count: 4 })
        );
        let k8s = env(&[("JOB_COMPLETION_INDEX", "0")]);
        assert_eq!(
            Shard::resolve(ShardSpec::Auto, Some(8), &k8s),
            Ok(Shard { index: 1, count: 8 })
        );
        assert!(
            Shard::resolve(ShardSpec::Auto, None, &k8s)
                .unwrap_err()
                .contains("--shard-count")
        );
        let k8s_env = env(&[("JOB_COMPLETION_INDEX", "7"), ("FIXRES_SHARD_COUNT", "8")]);
        assert_eq!(
            Shard::resolve(ShardSpec::Auto, None, k8s_env),
            Ok(Shard { index: 8, count: 8 })
        );
        let past = env(&[("JOB_COMPLETION_INDEX", "8"), ("FIXRES_SHARD_COUNT", "8")]);
        assert!(
            Shard::resolve(ShardSpec::Auto, None, past)
                .unwrap_err()
                .contains("1 to 8")
        );
        let none = env(&[]);
        assert!(
            Shard::resolve(ShardSpec::Auto, None, none)
                .unwrap_err()
                .contains("no job-array variables")
        );
        let given = ShardSpec::Given(Shard { index: 2, count: 4 });
        assert!(Shard::resolve(given, Some(3), env(&[])).is_err());
    }

    #[test]
    fn fingerprint_is_fnv1a() {
        // FNV-1a 64 of "a", the published test vector.
        assert_eq!(fingerprint(b"a"), "af63dc4c8601ec8c");
    }
}
