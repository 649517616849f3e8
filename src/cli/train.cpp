// medlens train --manifest CSV --task classify|segment --arch NAME --out MODEL_DIR [...]
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>

#include "cli/commands.h"
#include "core/error.h"
#include "train/trainer.h"
#include "transforms/params.h"

namespace medlens::cli {

Run add_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train a classifier or segmenter from a manifest into a model bundle");
  struct Args {
    std::string config, manifest, task, arch, out, schedule, balance, monitor, adversarial, corruptions, mixup;
    int epochs = 0, batch_size = 0, folds = 0, fold = -1, patience = 0, members = 0;
    double lr = 0, weight_decay = -1, ema = -1;
    int64_t seed = -1, max_steps = 0;
    bool resume = false, quiet = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--config", a->config, "Training config JSON (any TrainOptions key); flags below override it");
  cmd->add_option("--manifest", a->manifest, "Manifest CSV: path,label[,mask][,split]");
  cmd->add_option("--task", a->task, "classify | segment");
  cmd->add_option("--arch", a->arch, "resnet18 | resnet34 | resnet-compact | unet");
  cmd->add_option("--out", a->out, "Model bundle folder to write");
  cmd->add_option("--epochs", a->epochs, "Epochs");
  cmd->add_option("--members", a->members, "Ensemble members trained independently (seeds seed, seed+1000, ...)");
  cmd->add_option("--batch-size", a->batch_size, "Batch size");
  cmd->add_option("--lr", a->lr, "Peak learning rate (AdamW)");
  cmd->add_option("--weight-decay", a->weight_decay, "AdamW weight decay");
  cmd->add_option("--schedule", a->schedule, "cosine | onecycle | constant");
  cmd->add_option("--balance", a->balance, "weights | sampler | none");
  cmd->add_option("--monitor", a->monitor, "Validation metric for early stopping");
  cmd->add_option("--patience", a->patience, "Early-stopping patience in epochs");
  cmd->add_option("--folds", a->folds, "Stratified k-fold: number of folds (with --fold)");
  cmd->add_option("--fold", a->fold, "Stratified k-fold: the held-out fold, 0-based");
  cmd->add_option("--seed", a->seed, "Seed (data order, augmentation, initialisation)");
  cmd->add_option("--max-steps", a->max_steps, "Stop after this many optimiser steps");
  cmd->add_option("--adversarial", a->adversarial,
                  "Adversarial training: eps=0.00784,steps=3,ratio=0.5,method=pgd,norm=linf (eps: fraction of range)");
  cmd->add_option("--corruptions", a->corruptions,
                  "Corruption-augmented training: appends random-corruption with these parameters, e.g. "
                  "p=0.5,severity=1;3,kinds=gaussian;jpeg (empty value: the defaults)");
  cmd->add_option("--mixup", a->mixup,
                  "Mixup / CutMix: alpha=0.4,p=1,cutmix=0.5 (cutmix: share of mixed batches that paste a box)");
  cmd->add_option("--ema", a->ema, "Ship an exponential moving average of the weights with this decay (e.g. 0.995)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_flag("--resume", a->resume, "Continue from OUT/checkpoint");
  cmd->add_flag("--quiet", a->quiet, "No progress bar");
  return [a]() {
    TrainOptions o;
    if (!a->config.empty()) {
      std::ifstream in(a->config);
      if (!in) throw InputError(a->config, "cannot open training config");
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(in);
      } catch (const nlohmann::json::exception& e) {
        throw InputError(a->config, std::string("not valid JSON: ") + e.what());
      }
      try {
        o = TrainOptions::from_json(j);
      } catch (const UsageError& e) {
        throw InputError(a->config, e.what());
      }
    }
    if (!a->manifest.empty()) o.manifest = a->manifest;
    if (!a->task.empty()) o.task = a->task;
    if (!a->arch.empty()) o.arch = a->arch;
    if (!a->out.empty()) o.out = a->out;
    if (a->epochs > 0) o.epochs = a->epochs;
    if (a->members > 0) o.members = a->members;
    if (a->batch_size > 0) o.batch_size = a->batch_size;
    if (a->lr > 0) o.lr = a->lr;
    if (a->weight_decay >= 0) o.weight_decay = a->weight_decay;
    if (!a->schedule.empty()) o.schedule = a->schedule;
    if (!a->balance.empty()) o.balance = a->balance;
    if (!a->monitor.empty()) o.monitor = a->monitor;
    if (a->patience > 0) o.patience = a->patience;
    if (a->folds > 0) o.folds = a->folds;
    if (a->fold >= 0) o.fold = a->fold;
    if (a->seed >= 0) o.seed = static_cast<uint64_t>(a->seed);
    if (a->max_steps > 0) o.max_steps = a->max_steps;
    if (!a->adversarial.empty()) o.adversarial = parse_key_values(a->adversarial);
    if (!a->mixup.empty()) o.mixup = parse_key_values(a->mixup);
    if (a->ema >= 0) o.ema = a->ema;
    if (!a->corruptions.empty()) {
      nlohmann::json step = parse_key_values(a->corruptions == "default" ? "" : a->corruptions);
      step["op"] = "random-corruption";
      if (!o.augmentation.contains("transforms")) o.augmentation["transforms"] = nlohmann::json::array();
      o.augmentation["transforms"].push_back(step);
    }
    o.resume = o.resume || a->resume;
    o.quiet = o.quiet || a->quiet;
    if (o.manifest.empty()) throw UsageError("train needs --manifest (or a config naming it)");
    if (o.out.empty()) throw UsageError("train needs --out");
    const TrainResult r = train_model(o);
    std::printf("wrote %s (best epoch %d, val %s %.4f)\n", r.bundle.c_str(), r.best_epoch,
                r.history.empty() ? "" : "metric", r.best_metric);
    return 0;
  };
}

}  // namespace medlens::cli
