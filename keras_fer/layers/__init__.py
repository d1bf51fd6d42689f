"""keras_fer.layers"""
