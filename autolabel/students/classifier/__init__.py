"""students/classifier"""
