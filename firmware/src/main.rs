//! `kiosk`: the command-line front of the Ekspresi firmware.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use firmware::detect::{Cascade, DetectParams, Detector};
use firmware::imageio;
use serde::Serialize;

#[derive(Parser)]
#[command(version, about = "Ekspresi student-expression kiosk")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Find faces in still images (PNG, JPEG) with the Haar cascade.
    Detect(DetectArgs),
}

#[derive(Args)]
struct DetectArgs {
    images: Vec<PathBuf>,
    /// Print a JSON array, one object per image.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = 1.1)]
    scale_factor: f64,
    #[arg(long, default_value_t = 5)]
    min_neighbors: usize,
    #[arg(long, default_value_t = 30)]
    min_size: u32,
    #[arg(long)]
    max_size: Option<u32>,
    /// Cascade XML (default: the bundled OpenCV frontal-face cascade).
    #[arg(long)]
    cascade: Option<PathBuf>,
}

#[derive(Serialize)]
struct ImageFaces {
    image: String,
    faces: Vec<[i32; 4]>,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Detect(args) => detect(args),
    }
}

fn detect(args: DetectArgs) -> Result<()> {
    let cascade = match &args.cascade {
        Some(path) => Cascade::load(path)?,
        None => Cascade::frontal_face()?,
    };
    let params = DetectParams {
        scale_factor: args.scale_factor,
        min_neighbors: args.min_neighbors,
        min_size: args.min_size,
        max_size: args.max_size,
    };
    let mut detector = Detector::new(cascade, params)?;
    let mut results = Vec::new();
    for path in &args.images {
        let grey = imageio::read_grey(path).with_context(|| "detect needs PNG or JPEG images")?;
        let faces = detector
            .detect(grey.frame())
            .iter()
            .map(|r| [r.x, r.y, r.width, r.height])
            .collect();
        results.push(ImageFaces {
            image: path.display().to_string(),
            faces,
        });
    }
    if args.json {
        println!("{}", serde_json::to_string(&results)?);
    } else {
        for r in &results {
            println!("{}: {} face(s) {:?}", r.image, r.faces.len(), r.faces);
        }
    }
    Ok(())
}
