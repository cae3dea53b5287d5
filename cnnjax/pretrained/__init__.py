"""Weights from elsewhere: torchvision's safetensors as cnnjax variables
(`torchvision`) and `cnnjax import-weights` (`import_weights`)."""
