"""Triton kernels and their launchers (no autograd), installed as ``fastrnn.kernels``."""
