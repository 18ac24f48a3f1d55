"""Model zoo: CIFAR/digits-sized reference networks by name, plus user factories, via one registry.

Importing this package registers every zoo model; `build_model(name, in_channels, num_classes)`
builds one, and `list_models()` names them.
"""

from axdnn.models import alexnet, capsnet, digits, lenet, mobilenet, resnet, squeezenet, vgg, vit
from axdnn.models.alexnet import AlexNetCifar
from axdnn.models.capsnet import CapsNet
from axdnn.models.digits import DigitsCNN
from axdnn.models.lenet import LeNet5
from axdnn.models.mobilenet import MobileNetV2Cifar
from axdnn.models.registry import build_model, default_lr, list_models, register_model
from axdnn.models.resnet import CifarResNet
from axdnn.models.squeezenet import SqueezeNetCifar
from axdnn.models.vgg import VGG
from axdnn.models.vit import TinyViT

__all__ = [
    "AlexNetCifar",
    "CapsNet",
    "CifarResNet",
    "DigitsCNN",
    "LeNet5",
    "MobileNetV2Cifar",
    "SqueezeNetCifar",
    "TinyViT",
    "VGG",
    "alexnet",
    "build_model",
    "capsnet",
    "default_lr",
    "digits",
    "lenet",
    "list_models",
    "mobilenet",
    "register_model",
    "resnet",
    "squeezenet",
    "vgg",
    "vit",
]
