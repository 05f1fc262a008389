"""kerasopt fixture generators: shared writer, numpy reference, torch and TensorFlow engines."""
