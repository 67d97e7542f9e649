"""Folders of class sub-folders of images, as ImageNet and Imagenette come: listed without
MXNet, for the packer and for classifying a test folder with onnxruntime alone."""
import os

IMAGE_EXTS = (".jpg", ".jpeg", ".png")


def list_folder(image_folder, exts=IMAGE_EXTS):
    """[(label, path relative to image_folder)] of the images (files ending in ``exts``),
    the class names (sorted sub-folders), and the other files of the class folders."""
    if not os.path.isdir(image_folder):
        raise FileNotFoundError(f"{image_folder}: no such folder")
    classes = sorted(d for d in os.listdir(image_folder)
                     if os.path.isdir(os.path.join(image_folder, d)))
    if not classes:
        raise ValueError(f"{image_folder}: no class sub-folders")
    items, others = [], []
    for label, name in enumerate(classes):
        for folder, subfolders, files in os.walk(os.path.join(image_folder, name)):
            subfolders.sort()
            for f in sorted(files):
                path = os.path.relpath(os.path.join(folder, f), image_folder)
                if os.path.splitext(f)[1].lower() in exts:
                    items.append((label, path))
                else:
                    others.append(path)
    if not items:
        raise ValueError(f"{image_folder}: no {'/'.join(exts)} images in its class folders")
    return items, classes, others
