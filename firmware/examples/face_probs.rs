//! Prints a shipped int8 model's probabilities (the default, or MODEL by its `models.json`
//! name) for the first N `PublicTest` faces of FER-2013, one JSON array per line. `board/scripts/cross.sh parity` runs it natively and
//! as an aarch64 binary under qemu and compares: tract picks different integer kernels on
//! ARM, so identical top-1 is a real check, not a tautology.
//!
//! `cargo run --release -p firmware --example face_probs -- FER2013.csv.gz [N [MODEL]]`

use std::io::{BufRead, BufReader, Write};

use anyhow::{bail, Context, Result};
use ekspresi_common::model::ExpressionModel;
use ekspresi_common::{prepare_face, GreyImage};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let data = args
        .next()
        .context("usage: face_probs FER2013.csv[.gz] [N [MODEL]]")?;
    let count: usize = args.next().map_or(Ok(500), |n| n.parse())?;
    let model_name = args.next();
    let model_path = firmware::models::resolve(model_name.as_deref())?;
    let model = ExpressionModel::load(&model_path, 1)?;
    // Which of tract's kernels this CPU runs the model with, for the parity log.
    let mut kernels = model.matmul_kernels();
    kernels.sort();
    kernels.dedup();
    eprintln!("tract matmul kernels: {}", kernels.join(", "));
    let file = std::fs::File::open(&data).with_context(|| format!("cannot open {data}"))?;
    let reader: Box<dyn BufRead> = if data.ends_with(".gz") {
        Box::new(BufReader::new(flate2::read::GzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    let mut out = std::io::stdout().lock();
    let mut written = 0;
    for (number, line) in reader.lines().enumerate().skip(1) {
        let line = line.with_context(|| format!("{data}:{}", number + 1))?;
        let mut fields = line.split(',');
        let (Some(_), Some(pixels), Some(usage)) = (fields.next(), fields.next(), fields.next())
        else {
            bail!("{data}:{}: expected emotion,pixels,Usage", number + 1);
        };
        if usage.trim() != "PublicTest" {
            continue;
        }
        let grey: Vec<u8> = pixels
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("{data}:{}: bad pixel", number + 1))?;
        let face = GreyImage::new(48, 48, &grey)?;
        let probabilities = model.classify(&prepare_face(face))?[0];
        writeln!(out, "{}", serde_json::to_string(&probabilities)?)?;
        written += 1;
        if written == count {
            break;
        }
    }
    if written < count {
        bail!("only {written} PublicTest faces in {data}, wanted {count}");
    }
    Ok(())
}
