module bluegreen-operator/hack/testserver

go 1.26.0
