//! The explorer window, driven by egui_kittest on wgpu (lavapipe without a GPU): snapshots of
//! the main view on the demo, the K_test slider moving the crops and plots, and opening data and
//! weights through the same commands the dialogs and drag-and-drop send.
//! Refresh the snapshots (`tests/snapshots/`, egui_kittest's default folder, relative to the crate's
//! root where `cargo test` runs) with `UPDATE_SNAPSHOTS=true cargo test --release --test tests gui::`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui;
use eframe::egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use fixres::app::{Command, ExplorerApp, Startup};

use crate::util::fixtures::resnet18_narrow;
use crate::util::folders::Folder;

/// Window size of every test: fixed, so snapshots compare.
const SIZE: [f32; 2] = [1440.0, 900.0];

fn harness(startup: Startup) -> Harness<'static, ExplorerApp> {
    fixres::jobs::background_thread_pool(); // as the app does
    let startup = Startup { fresh: true, ..startup };
    let mut h = Harness::builder()
        .with_size(SIZE)
        .with_max_steps(100_000)
        .wgpu()
        .build_eframe(move |cc| ExplorerApp::new(cc, &startup));
    settle(&mut h);
    h
}

/// Steps frames until every background job has finished and the views show the current state.
/// The limit only keeps a hung job from hanging CI; nothing is timed.
fn settle(h: &mut Harness<'_, ExplorerApp>) {
    let start = Instant::now();
    loop {
        h.step();
        if !h.state().busy() {
            // A few more frames: results that just arrived are laid out and drawn.
            h.run_steps(4);
            if !h.state().busy() {
                return;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "jobs still running after 10 min"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn main_view_on_the_demo() {
    let mut h = harness(Startup::default());
    let app = h.state();
    let (dataset, model) = app.opened();
    assert!(dataset.expect("demo photos open").folder.samples.len() >= 30);
    assert_eq!(model.expect("demo model loads").model.arch, "efficientnet-lite0");
    assert!(app.messages().is_empty(), "{:?}", app.messages());
    let view = app.view_summary();
    assert_eq!((view.test_crop_side, view.train_crop_side), (Some(224), Some(224)));
    assert_eq!(view.activation_resolutions, vec![224]);
    h.get_by_label("Run sweep").click();
    settle(&mut h);
    h.snapshot("main_view_demo");
}

/// Drags the slider named `label` from its current value to `target` (linear slider over
/// `range`), through real pointer events.
fn drag_slider(h: &mut Harness<'_, ExplorerApp>, label: &str, range: (f32, f32), from: f32, target: f32) {
    let rect = h.get_by_role_and_label(Role::Slider, label).rect();
    // The handle travels between the rail's ends less its radius (half the rail's height).
    let radius = rect.height() / 2.0;
    let x = |v: f32| rect.left() + radius + (v - range.0) / (range.1 - range.0) * (rect.width() - 2.0 * radius);
    let y = rect.center().y;
    h.drag_at(egui::pos2(x(from), y));
    h.step();
    for i in 1..=8 {
        h.hover_at(egui::pos2(x(from + (target - from) * i as f32 / 8.0), y));
        h.step();
    }
    h.drop_at(egui::pos2(x(target), y));
    h.step();
}

#[test]
fn dragging_k_test_moves_the_test_crop_and_the_plots() {
    let mut h = harness(Startup::default());
    let before = h.state().view_summary();
    drag_slider(&mut h, "K_test", (8.0, 640.0), 224.0, 320.0);
    settle(&mut h);
    let test_res = h.state_mut().settings_mut().test_res;
    assert!((300..=340).contains(&test_res), "K_test after the drag: {test_res}");
    let after = h.state().view_summary();
    assert_eq!(after.test_crop_side, Some(test_res), "the test crop follows K_test");
    assert_eq!(after.train_crop_side, before.train_crop_side, "the train crops stay");
    assert_eq!(
        after.size_plot_test_res,
        Some(test_res),
        "the apparent-size plot follows K_test"
    );
    assert!(
        after.activation_resolutions.contains(&test_res) && after.activation_resolutions.contains(&224),
        "activations at the new K_test over K_train: {:?}",
        after.activation_resolutions
    );
    h.snapshot("main_view_k_test_320");
}

/// The crop mode reaches the test crop: squash resizes both sides to the resize side, and the
/// resize-side field sets the crop ratio that gives exactly that side.
#[test]
fn the_crop_mode_and_the_resize_side_set_the_test_crop() {
    let mut h = harness(Startup::default());
    settle(&mut h);
    h.get_by_label("Resize(256) + CenterCrop(224)");
    h.state_mut().settings_mut().crop_mode = fixres::data::CropMode::Squash;
    settle(&mut h);
    h.get_by_label("Resize((256, 256)) + CenterCrop(224)");
    h.get_by_label("test: resized to 256×256");
    h.get_by_role_and_label(Role::SpinButton, "resize side")
        .set_value_accesskit(232.0);
    settle(&mut h);
    h.get_by_label("Resize((232, 232)) + CenterCrop(224)");
    h.get_by_label("test: resized to 232×232");
    let ratio = h.state_mut().settings_mut().crop_ratio;
    assert_eq!(fixres::data::transforms::test_resize_size(224, ratio), 232);
}

/// The browser's filter narrows the list to the classes and files whose names contain what is
/// typed, and says how many match.
#[test]
fn the_browser_filters_by_class_and_file_name() {
    let mut h = harness(Startup::default());
    h.get_by_label("39 images");
    h.get_by_role_and_label(Role::TextInput, "filter").click();
    h.run_steps(2);
    h.get_by_role_and_label(Role::TextInput, "filter").type_text("PANDA");
    h.run_steps(4);
    // "giant panda" and "lesser panda": their images, no other class.
    h.get_by_label("2 images of 39");
    h.get_by_label("2 match the filter"); // the status bar
    h.get_by_label("giant panda");
    h.get_by_label("lesser panda");
    assert!(h.query_by_label("tabby").is_none(), "other classes hidden");
}

#[test]
fn keyboard_steps_through_the_images_and_resamples() {
    let mut h = harness(Startup::default());
    let seed = h.state_mut().settings_mut().seed;
    h.key_press(egui::Key::N);
    h.key_press(egui::Key::R);
    settle(&mut h);
    assert_eq!(h.state().view_summary().selected, 1);
    assert_eq!(h.state_mut().settings_mut().seed, seed + 1);
    h.key_press(egui::Key::P);
    h.key_press(egui::Key::P);
    settle(&mut h);
    let last = h.state().opened().0.expect("demo photos").folder.samples.len() - 1;
    assert_eq!(h.state().view_summary().selected, last, "previous wraps around");
}

/// An ImageFolder of two classes made of demo photos, with one broken file.
fn small_folder(root: &Path) -> PathBuf {
    let data = root.join("data");
    Folder::new(&data)
        .photo("cat", "chelsea.png")
        .photo("cup", "coffee_palette.png")
        .photo("cup", "rocket.jpg")
        .file("cat", "broken.jpg", b"not a jpeg");
    data
}

#[test]
fn opening_a_folder_and_weights_by_command_as_the_dialogs_do() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_folder(tmp.path());
    let mut h = harness(Startup::default());
    h.state_mut().run(Command::OpenDataset(data.clone()));
    h.state_mut().run(Command::OpenWeights(resnet18_narrow()));
    settle(&mut h);
    let app = h.state();
    let (dataset, model) = app.opened();
    let dataset = dataset.expect("folder opened");
    assert_eq!(dataset.folder.classes, vec!["cat", "cup"]);
    assert_eq!(dataset.folder.samples.len(), 3);
    assert_eq!(
        dataset.folder.skipped.len(),
        1,
        "the broken file is skipped and counted"
    );
    assert_eq!(model.expect("weights loaded").model.arch, "resnet18");
    assert!(app.messages().is_empty(), "{:?}", app.messages());
    h.get_by_label_contains("1 skipped");
}

#[derive(Debug)]
struct Dropped(PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

#[test]
fn dropping_a_folder_opens_it_and_a_bad_weights_file_is_refused_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_folder(tmp.path());
    let bad = tmp.path().join("weights.safetensors");
    std::fs::write(&bad, b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ").unwrap();
    let mut h = harness(Startup::default());
    h.input_mut().dropped_files.push(Arc::new(Dropped(data.clone())));
    h.input_mut().dropped_files.push(Arc::new(Dropped(bad.clone())));
    settle(&mut h);
    let app = h.state();
    assert_eq!(app.opened().0.expect("dataset").opened, data);
    assert_eq!(
        app.opened().1.expect("the demo model stays").model.arch,
        "efficientnet-lite0"
    );
    let messages = app.messages();
    assert!(
        messages.iter().any(|m| m.contains("weights.safetensors")),
        "the refusal names the file: {messages:?}"
    );
    // The message can be dismissed.
    h.get_all_by_label("×").next().expect("a dismiss button").click();
    h.run_steps(2);
    assert!(h.state().messages().is_empty());
}

#[test]
fn plots_export_their_data_as_csv_and_their_pixels_as_png() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = harness(Startup::default());
    h.state_mut().run(Command::SetExportDir(tmp.path().to_owned()));
    // The first CSV and PNG buttons belong to the apparent-size plot.
    // One at a time: the message each export shows may cover a button.
    h.get_all_by_label("CSV").next().expect("a CSV button").click();
    settle(&mut h);
    h.get_all_by_label("PNG").next().expect("a PNG button").click();
    settle(&mut h);
    h.run_steps(4);
    let csv = std::fs::read_to_string(tmp.path().join("apparent-size.csv")).expect("CSV written");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("section,x_lo,x_hi_or_k_test,value"));
    let bins = lines.filter(|l| l.starts_with("ratio_histogram,")).count();
    assert_eq!(bins, 40);
    let png = image::open(tmp.path().join("apparent-size.png"))
        .unwrap_or_else(|e| panic!("PNG: {e}; messages: {:?}", h.state().messages()));
    // The two plots are stacked: taller than wide-ish, and far smaller than the window.
    assert!(
        png.width() > 200 && png.height() > 300,
        "{}x{}",
        png.width(),
        png.height()
    );
    assert!(png.width() < SIZE[0] as u32 / 2, "a crop of the plot, not the window");
    let messages = h.state().messages();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages.iter().all(|m| m.starts_with("wrote ")), "{messages:?}");
}

/// An ImageFolder of ImageNet classes the demo model knows, five images each (copies of the
/// test photos), so a fifth of each class is held out for validation.
fn imagenet_folder(root: &Path) -> PathBuf {
    let data = root.join("fine-tune");
    let folder = Folder::new(&data);
    for (class, photos) in [
        ("tabby", ["chelsea.png", "astronaut_rgba.png"]),
        ("espresso", ["coffee_palette.png", "coffee_cmyk.jpg"]),
    ] {
        for i in 0..5 {
            let photo = photos[i % 2];
            folder.photo_as(class, photo, &format!("{i}_{photo}"));
        }
    }
    data
}

fn finetune_harness(tmp: &Path) -> Harness<'static, ExplorerApp> {
    let mut h = harness(Startup {
        data: Some(imagenet_folder(tmp)),
        ..Startup::default()
    });
    h.state_mut().settings_mut().test_res = 96;
    h.state_mut().run(Command::SetExportDir(tmp.join("exports")));
    h.state_mut().run(Command::ShowFinetune);
    settle(&mut h);
    h
}

/// A remedy's model shows its pooled activations beside the open model's: the parametric
/// adaptation's mapped as its export's classifier maps them.
#[test]
fn a_remedy_shows_its_activations_beside_the_models() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = finetune_harness(tmp.path());
    h.state_mut().settings_mut().train_res = 64;
    settle(&mut h);
    h.get_by_label("Re-estimate all BatchNorms").click_accesskit();
    settle(&mut h);
    h.get_by_label_contains("all 49 BatchNorms re-estimated over 10 images");
    h.get_by_label("Show its activations").click_accesskit();
    settle(&mut h);
    h.get_by_label("96 after");
    h.get_by_label("Parametric adaptation 64 -> 96").click_accesskit();
    settle(&mut h);
    h.get_by_label_contains("Fréchet fits");
    h.get_by_label("Show its activations").click_accesskit();
    settle(&mut h);
    h.get_by_label("96 after");
    assert!(
        h.state().messages().iter().all(|m| !m.contains("activations")),
        "{:?}",
        h.state().messages()
    );
}

#[test]
fn fine_tune_from_the_window_then_export_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = finetune_harness(tmp.path());
    h.get_by_role_and_label(Role::SpinButton, "epochs")
        .set_value_accesskit(2.0);
    h.run_steps(2);
    h.get_by_label("Start fine-tune").click();
    settle(&mut h);
    h.get_by_label_contains("Validation top-1 at 96:");
    h.get_by_label_contains("(8 training, 2 validation images)");
    h.get_by_label("Export to the export folder").click();
    settle(&mut h);
    let exported = tmp.path().join("exports/efficientnet_lite0_fixres96.safetensors");
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(exported.with_extension("safetensors.json")).unwrap()).unwrap();
    assert_eq!(sidecar["config"]["res"], 96);
    assert_eq!(sidecar["epochs"].as_array().map(Vec::len), Some(2));
    h.get_by_label("Open the exported model").click();
    settle(&mut h);
    let app = h.state();
    let model = app.opened().1.expect("a model");
    assert_eq!(model.path, exported, "the exported weights load back");
    assert_eq!(model.model.arch, "efficientnet-lite0");
    assert!(
        app.messages().iter().all(|m| !m.contains("cannot")),
        "{:?}",
        app.messages()
    );
}

/// Where the sweep refuses a dataset of the user's own classes, the app offers a new classifier
/// for them; trained at K_train in the fine-tune window's transfer mode, it is saved and opened,
/// and the sweep then scores the dataset with it.
#[test]
fn own_classes_train_a_classifier_then_the_sweep_runs_on_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("own");
    let folder = Folder::new(&data);
    for (class, photos) in [
        ("cat", ["chelsea.png", "chelsea.png"]),
        ("drink", ["coffee_palette.png", "coffee_cmyk.jpg"]),
    ] {
        for i in 0..5 {
            let photo = photos[i % 2];
            folder.photo_as(class, photo, &format!("{i}_{photo}"));
        }
    }
    let mut h = harness(Startup {
        data: Some(data),
        ..Startup::default()
    });
    h.state_mut().settings_mut().train_res = 64;
    h.state_mut().run(Command::SetExportDir(tmp.path().join("exports")));
    h.get_by_label("Run sweep").click_accesskit();
    settle(&mut h);
    h.get_by_label_contains("cannot score this dataset with this model");
    h.get_by_label("Train a classifier for these 2 classes at K_train = 64…")
        .click_accesskit();
    settle(&mut h);
    h.get_by_label_contains("Trains a new classifier for the 2 classes");
    h.get_by_role_and_label(Role::SpinButton, "epochs")
        .set_value_accesskit(2.0);
    // The whole network trains (EfficientNet-Lite is built of Burn modules).
    h.get_by_role_and_label(Role::RadioButton, "all").click_accesskit();
    h.run_steps(2);
    h.get_by_label_contains("the whole network trains with it");
    h.get_by_label("Start training").click_accesskit();
    settle(&mut h);
    h.get_by_label_contains("New classifier: validation top-1 at 64:");
    let app = h.state();
    let model = app.opened().1.expect("a model");
    let exported = tmp.path().join("exports/efficientnet_lite0_2classes_k64.safetensors");
    assert_eq!(model.path, exported, "the new model is the open one");
    let sidecar: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            tmp.path()
                .join("exports/efficientnet_lite0_2classes_k64.safetensors.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(sidecar["transfer"]["trainable"], "all");
    let stem = |p: &std::path::Path| {
        let file = fixres::model::weights::WeightFile::open(p).unwrap();
        let net = fixres::model::end_to_end::EndToEnd::from_file(&file, &burn::tensor::Device::flex()).unwrap();
        net.unwrap()
            .state_dict()
            .into_iter()
            .find(|(k, ..)| k == "_conv_stem.weight")
            .unwrap()
            .2
    };
    assert!(
        stem(&exported) != stem(&crate::util::fixtures::efficientnet_lite0()),
        "the stem trained"
    );
    assert_eq!(model.model.classes, 2);
    assert_eq!(
        model.model.class_names.as_deref(),
        Some(&["cat".to_owned(), "drink".to_owned()][..])
    );
    h.get_by_label("Run sweep").click_accesskit();
    settle(&mut h);
    assert!(
        h.query_by_label_contains("cannot score").is_none(),
        "the sweep scores the dataset with the new classifier"
    );
    h.get_by_label("top-5"); // the sweep's table

    // The window is back in its FixRes mode, for the fine-tune at K_test.
    h.get_by_label("Start fine-tune");
}

/// "Copy as code" puts the test transform on the clipboard as torchvision code and says so.
#[test]
fn the_test_transform_copies_as_code() {
    let mut h = harness(Startup::default());
    h.get_by_label("Copy as code").click_accesskit();
    h.step(); // the frame that handles the click: its output holds the copy
    let copied: Vec<String> = h
        .output()
        .platform_output
        .commands
        .iter()
        .filter_map(|c| match c {
            egui::OutputCommand::CopyText(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert!(
        h.state()
            .messages()
            .iter()
            .any(|m| m.contains("copied the test transform at K_test = 224")),
        "{:?}",
        h.state().messages()
    );
    if let Some(text) = copied.first() {
        assert!(
            text.contains("T.Resize(256") && text.contains("T.CenterCrop(224)"),
            "{text}"
        );
    }
}

#[test]
fn cancelling_a_fine_tune_keeps_weights_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = finetune_harness(tmp.path());
    h.get_by_role_and_label(Role::SpinButton, "epochs")
        .set_value_accesskit(500.0);
    h.get_by_role_and_label(Role::SpinButton, "batch")
        .set_value_accesskit(2.0);
    h.run_steps(2);
    h.get_by_label("Start fine-tune").click();
    // Wait until training runs (the progress bar counts images), then cancel.
    let start = Instant::now();
    while h.query_by_label_contains("images/s").is_none() {
        h.step();
        std::thread::sleep(Duration::from_millis(10));
        assert!(start.elapsed() < Duration::from_secs(300), "training never started");
    }
    h.get_by_label("Cancel").click();
    settle(&mut h);
    h.get_by_label_contains("cancelled; kept the");
    h.get_by_label("Export to the export folder").click();
    settle(&mut h);
    assert!(
        tmp.path()
            .join("exports/efficientnet_lite0_fixres96.safetensors")
            .is_file()
    );
}

/// The sweep stopped at a precision: an estimate from a class-stratified sample of the folder,
/// with its 95 % intervals, each within the asked ± points.
#[test]
fn the_sweep_stops_at_the_asked_precision() {
    let mut h = harness(Startup::default());
    h.state_mut().run(Command::OpenFashionDemo);
    settle(&mut h);
    h.get_by_role_and_label(Role::CheckBox, "stop at ±").click_accesskit();
    h.run_steps(2);
    h.get_by_role_and_label(Role::SpinButton, "stop at ±")
        .set_value_accesskit(4.0);
    h.run_steps(2);
    h.get_by_label("Run sweep").click();
    settle(&mut h);
    h.get_by_label_contains("stopped at ±4 points: an estimate from");
    h.get_by_label("95 % CI");
    assert!(
        h.query_all_by_label("1000").next().is_none(),
        "no resolution scored the whole folder"
    );
    // Continued without the stop: the rest of the folder, in the same order, counts kept.
    h.get_by_role_and_label(Role::CheckBox, "stop at ±").click_accesskit();
    h.run_steps(2);
    h.get_by_label("Continue").click();
    settle(&mut h);
    let rows = h.query_all_by_label("1000").count();
    assert!(rows >= 5, "{rows} table rows with all 1000 images scored");
    assert!(h.query_by_label_contains("stopped at").is_none());
    // What `fixres eval` gives on the whole folder at K = 20 and 28 (README's table).
    for top1 in ["80.6 %", "79.1 %"] {
        assert!(h.query_all_by_label(top1).next().is_some(), "no row at {top1}");
    }
}

#[test]
fn the_sweep_stops_after_the_asked_number_of_images() {
    let mut h = harness(Startup::default());
    h.state_mut().run(Command::OpenFashionDemo);
    settle(&mut h);
    h.get_by_role_and_label(Role::CheckBox, "stop after").click_accesskit();
    h.run_steps(2);
    h.get_by_role_and_label(Role::SpinButton, "stop after")
        .set_value_accesskit(200.0);
    h.run_steps(2);
    h.get_by_label("Run sweep").click();
    settle(&mut h);
    h.get_by_label_contains("stopped after 200 images: an estimate from 200 of 1000 images");
    let rows = h.query_all_by_label("200").count();
    assert!(rows >= 5, "{rows} table rows with 200 images scored");
    assert!(h.query_all_by_label("1000").next().is_none());
}

#[test]
fn the_fashion_demo_runs_the_sweep_the_fine_tune_and_shows_its_grid() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = harness(Startup::default());
    h.state_mut().run(Command::OpenFashionDemo);
    settle(&mut h);
    {
        let app = h.state();
        let (dataset, model) = app.opened();
        let dataset = dataset.expect("Fashion opened");
        assert_eq!(dataset.folder.samples.len(), 1000, "the val/ split is shown");
        assert_eq!(model.expect("its model").model.arch, "resnet-tiny");
        assert_eq!(app.view_summary().test_crop_side, Some(20));
        assert!(app.messages().is_empty(), "{:?}", app.messages());
    }
    h.get_by_label("Run sweep").click();
    settle(&mut h);
    // The sweep's table: one row per test resolution, each scoring all 1000 images.
    let rows = h.query_all_by_label("1000").count();
    assert!(rows >= 5, "{rows} table rows with 1000 images scored");
    h.get_by_label("Grid…").click();
    h.run_steps(3);
    h.get_by_label("after the FixRes fine-tune at K_test");
    h.state_mut().run(Command::SetExportDir(tmp.path().to_owned()));
    h.state_mut().run(Command::ShowFinetune);
    h.run_steps(2);
    h.get_by_role_and_label(Role::SpinButton, "epochs")
        .set_value_accesskit(1.0);
    h.run_steps(2);
    h.get_by_label("Start fine-tune").click();
    settle(&mut h);
    h.get_by_label_contains("(3000 training, 1000 validation images)");
}
