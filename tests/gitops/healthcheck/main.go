// Command shopfloor-healthcheck computes what Argo CD and kstatus (Flux, kpt, cli-utils) say about
// Shopfloor objects, with their own code: Argo CD's Lua health evaluation (util/lua, the same code path as
// the application controller, gitops-engine's health.GetResourceHealth) and sigs.k8s.io/cli-utils/pkg/kstatus.
//
//	shopfloor-healthcheck objects --kubeconfig FILE [--argocd-namespace NS] < objects.json
//	    stdin: a JSON array of objects. The health checks are read from the argocd-cm ConfigMap in NS
//	    (default argocd) on that API server by Argo CD's settings manager, as an Argo CD installation reads them.
//	    stdout: a JSON array, one {"apiVersion","kind","name","argocd":{...},"kstatus":{...}} per object.
//	shopfloor-healthcheck argocd-tests DIR
//	    runs every health.lua under DIR (Argo CD's resource_customizations layout) against the cases of its
//	    health_test.yaml, as Argo CD's own TestLuaHealthScript does; prints one line per case, exits 1 on a
//	    mismatch.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/argoproj/gitops-engine/pkg/health"
	log "github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"

	appv1 "github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/argoproj/argo-cd/v3/util/settings"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type result struct {
	APIVersion string  `json:"apiVersion"`
	Kind       string  `json:"kind"`
	Name       string  `json:"name"`
	ArgoCD     verdict `json:"argocd"`
	KStatus    verdict `json:"kstatus"`
}

func main() {
	log.SetOutput(io.Discard) // Argo CD's settings manager logs its informers' progress
	if len(os.Args) < 2 {
		fail(errors.New("usage: shopfloor-healthcheck objects|argocd-tests ..."))
	}
	var err error
	switch os.Args[1] {
	case "objects":
		err = objects(os.Args[2:])
	case "argocd-tests":
		err = argocdTests(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (objects, argocd-tests)", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "shopfloor-healthcheck:", err)
	os.Exit(2)
}

func objects(args []string) error {
	flags := flag.NewFlagSet("objects", flag.ExitOnError)
	kubeconfig := flags.String("kubeconfig", "", "kubeconfig of the API server holding argocd-cm")
	namespace := flags.String("argocd-namespace", "argocd", "namespace of argocd-cm")
	if err := flags.Parse(args); err != nil {
		return err
	}
	overrides, err := argocdOverrides(*kubeconfig, *namespace)
	if err != nil {
		return err
	}
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	// apimachinery's decoding, as a client of the API server has it: integers stay int64 (kstatus insists).
	var items []map[string]any
	if err := utiljson.Unmarshal(input, &items); err != nil {
		return fmt.Errorf("reading the objects from stdin: %w", err)
	}
	results := make([]result, 0, len(items))
	for _, item := range items {
		obj := &unstructured.Unstructured{Object: item}
		argo, err := health.GetResourceHealth(obj, lua.ResourceHealthOverrides(overrides))
		if err != nil {
			return err
		}
		if argo == nil {
			argo = &health.HealthStatus{Status: "", Message: "no health check for this kind"}
		}
		k, err := status.Compute(obj)
		if err != nil {
			return fmt.Errorf("kstatus on %s/%s: %w", obj.GetKind(), obj.GetName(), err)
		}
		results = append(results, result{
			APIVersion: obj.GetAPIVersion(),
			Kind:       obj.GetKind(),
			Name:       obj.GetName(),
			ArgoCD:     verdict{Status: string(argo.Status), Message: argo.Message},
			KStatus:    verdict{Status: k.Status.String(), Message: k.Message},
		})
	}
	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", "  ")
	return out.Encode(results)
}

// argocdOverrides reads resource.customizations.* from argocd-cm the way Argo CD does: its settings manager, its
// informers (the ConfigMap must carry app.kubernetes.io/part-of: argocd) and its key parsing.
func argocdOverrides(kubeconfig, namespace string) (map[string]appv1.ResourceOverride, error) {
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	overrides, err := settings.NewSettingsManager(ctx, client, namespace).GetResourceOverrides()
	if err != nil {
		return nil, fmt.Errorf("reading argocd-cm in namespace %s: %w", namespace, err)
	}
	return overrides, nil
}

type healthTests struct {
	Tests []struct {
		InputPath    string              `json:"inputPath"`
		HealthStatus health.HealthStatus `json:"healthStatus"`
	} `json:"tests"`
}

func argocdTests(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: shopfloor-healthcheck argocd-tests DIR")
	}
	mismatches, cases := 0, 0
	err := filepath.WalkDir(args[0], func(path string, entry fs.DirEntry, err error) error {
		if err != nil || entry.Name() != "health.lua" {
			return err
		}
		dir := filepath.Dir(path)
		script, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		raw, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
		if err != nil {
			return err
		}
		var suite healthTests
		if err := yaml.Unmarshal(raw, &suite); err != nil {
			return fmt.Errorf("%s/health_test.yaml: %w", dir, err)
		}
		for _, test := range suite.Tests {
			cases++
			input, err := os.ReadFile(filepath.Join(dir, test.InputPath))
			if err != nil {
				return err
			}
			obj := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(input, &obj.Object); err != nil {
				return fmt.Errorf("%s: %w", test.InputPath, err)
			}
			got, err := lua.VM{UseOpenLibs: true}.ExecuteHealthLua(obj, string(script))
			if err != nil {
				return fmt.Errorf("%s on %s: %w", path, test.InputPath, err)
			}
			verdict := "ok"
			if got.Status != test.HealthStatus.Status || got.Message != test.HealthStatus.Message {
				verdict = fmt.Sprintf("MISMATCH: want %s %q", test.HealthStatus.Status, test.HealthStatus.Message)
				mismatches++
			}
			fmt.Printf("%s %s: %s %q %s\n", dir, test.InputPath, got.Status, got.Message, verdict)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if cases == 0 {
		return fmt.Errorf("no health.lua with test cases under %s", args[0])
	}
	if mismatches > 0 {
		fmt.Printf("%d of %d cases do not match\n", mismatches, cases)
		os.Exit(1)
	}
	return nil
}
