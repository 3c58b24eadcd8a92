//! A run's folder and its checkpoints: `config.json`, `log.jsonl` (one line per epoch),
//! `training.png`, `checkpoint/` (last epoch: model, optimizer, state; swapped in whole, so
//! an interruption leaves the old or the new one) and `best.bpk` (the best epoch's model).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomically;
use crate::nets::{Arch, Net};
use crate::recipe::TrainConfig;

/// One line of `log.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    /// Accuracy on the (augmented) training batches, as Keras reports it.
    pub train_accuracy: f64,
    pub validation_loss: f64,
    pub validation_accuracy: f64,
    pub learning_rate: f64,
    pub seconds: f64,
}

/// What `checkpoint/state.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RunState {
    pub epochs_done: usize,
    pub best_epoch: usize,
    pub best_validation_accuracy: f64,
}

/// Where a run keeps its files.
pub struct RunDir(pub(crate) PathBuf);

impl RunDir {
    pub fn new(path: &Path) -> Self {
        Self(path.to_owned())
    }
    pub(crate) fn config(&self) -> PathBuf {
        self.0.join("config.json")
    }
    pub(crate) fn log(&self) -> PathBuf {
        self.0.join("log.jsonl")
    }
    pub(crate) fn chart(&self) -> PathBuf {
        self.0.join("training.png")
    }
    pub(crate) fn checkpoint(&self) -> PathBuf {
        self.0.join("checkpoint")
    }
    /// The best epoch's weights.
    pub fn best_model(&self) -> PathBuf {
        self.0.join("best.bpk")
    }

    /// The run's saved configuration.
    pub fn load_config(&self) -> Result<TrainConfig> {
        let path = self.config();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a training config", path.display()))
    }

    pub fn load_log(&self) -> Result<Vec<EpochLog>> {
        let path = self.log();
        if !path.exists() {
            return Ok(Vec::new());
        }
        let text = std::fs::read_to_string(&path)?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .with_context(|| format!("{}:{}: bad log line", path.display(), i + 1))
            })
            .collect()
    }
}

pub(crate) fn save_model(model: &Net, path: &Path) -> Result<()> {
    let temporary = path.with_extension("bpk.tmp");
    let mut store = BurnpackStore::from_file(&temporary)
        .overwrite(true)
        .auto_extension(false);
    model
        .save_into(&mut store)
        .map_err(|e| anyhow::anyhow!("cannot save model to {}: {e}", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("cannot rename to {}", path.display()))
}

/// Loads weights saved by training into a fresh network of `arch` (inference device).
pub fn load_model(arch: &Arch, path: &Path) -> Result<Net> {
    let mut model = Net::new(arch, &Device::flex());
    load_weights(&mut model, path)?;
    Ok(model)
}

pub(crate) fn load_weights(model: &mut Net, path: &Path) -> Result<()> {
    if !path.exists() {
        bail!("no model at {}", path.display());
    }
    let mut store = BurnpackStore::from_file(path).auto_extension(false);
    model
        .load_from(&mut store)
        .map_err(|e| anyhow::anyhow!("cannot load model {}: {e}", path.display()))?;
    Ok(())
}

/// Writes the checkpoint into a fresh folder, then swaps it in with renames, so an
/// interruption leaves either the old or the new checkpoint, never half of one.
pub(crate) fn save_checkpoint(
    run: &RunDir,
    model: &Net,
    optimizer: &burn::optim::ModuleOptimizer,
    state: &RunState,
    log: &[EpochLog],
) -> Result<()> {
    let next = run.0.join("checkpoint.next");
    let old = run.0.join("checkpoint.old");
    let _ = std::fs::remove_dir_all(&next);
    std::fs::create_dir_all(&next)?;
    save_model(model, &next.join("model.bpk"))?;
    optimizer
        .save(next.join("optimizer.bin"))
        .map_err(|e| anyhow::anyhow!("cannot save optimizer state: {e}"))?;
    write_atomically(
        &next.join("state.json"),
        serde_json::to_string_pretty(state)?.as_bytes(),
    )?;
    let lines: String = log
        .iter()
        .map(|e| serde_json::to_string(e).map(|l| l + "\n"))
        .collect::<Result<_, _>>()?;
    write_atomically(&run.log(), lines.as_bytes())?;
    let _ = std::fs::remove_dir_all(&old);
    if run.checkpoint().exists() {
        std::fs::rename(run.checkpoint(), &old)?;
    }
    std::fs::rename(&next, run.checkpoint())?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

pub(crate) fn load_checkpoint(dir: &Path, model: &mut Net) -> Result<RunState> {
    let state_path = dir.join("state.json");
    let state: RunState = serde_json::from_str(&std::fs::read_to_string(&state_path)?)
        .with_context(|| format!("{} is corrupt", state_path.display()))?;
    load_weights(model, &dir.join("model.bpk"))?;
    Ok(state)
}
